"""The filter language (``vectorstores.filters``) translated into PostgreSQL over JSONB.

Every value travels as a query parameter and every identifier is composed with
``psycopg.sql``; no part of a filter is ever pasted into the SQL text. The translation keeps
the semantics of ``filters.matches``:

* equality is JSONB containment (``metadata @> '{"lang": "en"}'``): numbers compare by value
  (``4 == 4.0``), a boolean only equals a boolean, a string only a string, and a GIN index
  (``jsonb_path_ops``) can serve it;
* ``$ne`` is the negation of equality, so a chunk without the field matches;
* ``$gt``/``$gte``/``$lt``/``$lte`` hold only for JSON numbers, compared as float8 inside a
  ``CASE`` so that a string value is never cast.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from vectorstores.filters import LOGICAL_OPERATORS, validate_filter

_SIGNS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _contains(col: sql.Composable, field: str, value: Any, params: list[Any]) -> sql.Composable:
    params.append(Jsonb({field: value}))
    return sql.SQL("({} @> %s)").format(col)


def _field(col: sql.Composable, field: str, condition: object, params: list[Any]) -> list[Any]:
    ops: list[tuple[str, Any]] = (
        list(condition.items()) if isinstance(condition, Mapping) else [("$eq", condition)]
    )
    out: list[sql.Composable] = []
    for op, operand in ops:
        if op == "$eq":
            out.append(_contains(col, field, operand, params))
        elif op == "$ne":
            out.append(sql.SQL("NOT {}").format(_contains(col, field, operand, params)))
        elif op == "$in":
            subs = [_contains(col, field, value, params) for value in operand]
            out.append(sql.SQL("({})").format(sql.SQL(" OR ").join(subs)))
        else:
            params.extend([field, field, float(operand)])
            out.append(
                sql.SQL(
                    "(CASE WHEN jsonb_typeof({col} -> %s) = 'number' "
                    "THEN ({col} ->> %s)::float8 {sign} %s::float8 ELSE false END)"
                ).format(col=col, sign=sql.SQL(_SIGNS[op]))
            )
    return out


def _clauses(col: sql.Composable, f: Mapping[str, Any], params: list[Any]) -> list[Any]:
    clauses: list[sql.Composable] = []
    for key, value in f.items():
        if key in LOGICAL_OPERATORS:
            subs = [
                sql.SQL("({})").format(sql.SQL(" AND ").join(_clauses(col, s, params)))
                for s in value
            ]
            joiner = sql.SQL(" AND " if key == "$and" else " OR ")
            clauses.append(sql.SQL("({})").format(joiner.join(subs)))
        else:
            clauses.extend(_field(col, key, value, params))
    return clauses


def to_pg_where(
    f: Mapping[str, Any] | None, column: sql.Composable
) -> tuple[sql.Composable, list[Any]]:
    """Translate a filter into a PostgreSQL condition on a JSONB expression, with parameters.

    Args:
        f: The filter; ``None`` or ``{}`` matches everything.
        column: The JSONB expression the filter sees, e.g. ``sql.Identifier("metadata")``.

    Returns:
        ``(condition, params)`` with ``%s`` placeholders; ``(TRUE, [])`` for no filter.

    Raises:
        FilterError: ``f`` is not valid.
    """
    validate_filter(f)
    if not f:
        return sql.SQL("TRUE"), []
    params: list[Any] = []
    condition = sql.SQL(" AND ").join(_clauses(column, f, params))
    return condition, params
