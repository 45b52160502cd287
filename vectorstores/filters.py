"""The metadata filter language shared by every vector store backend.

A filter is a mapping. Each key is either a metadata field name or a logical operator:

* ``{"lang": "en"}`` and ``{"lang": {"$eq": "en"}}``: equality.
* ``{"lang": {"$ne": "en"}}``: inequality; a chunk *without* the field matches too.
* ``{"lang": {"$in": ["en", "fr"]}}``: the value is one of a non-empty list of values of one
  type (ints and floats count as one type: numbers).
* ``{"page": {"$gt": 3}}``, ``$gte``, ``$lt``, ``$lte``: numeric comparisons; the operand must
  be an int or float, and only int or float metadata values can match.
* ``{"$and": [f1, f2, ...]}`` and ``{"$or": [f1, f2, ...]}``: non-empty lists of filters.
* Field names are non-empty, do not start with ``$`` and contain no ``"``.
* Several keys in one mapping, or several operators for one field
  (``{"page": {"$gte": 2, "$lt": 5}}``), all have to hold (AND).

Values are str, int, float or bool. Numbers compare by value (``1 == 1.0``); booleans are not
numbers (``True`` never equals ``1`` and never satisfies ``$gt``); a missing field satisfies
only ``$ne``. These are Chroma's semantics too, so every backend returns the same chunks.
An empty filter (``{}``) or ``None`` matches everything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from core.errors import FilterError

Predicate = Callable[[Mapping[str, Any]], bool]

COMPARISON_OPERATORS = ("$eq", "$ne", "$in", "$gt", "$gte", "$lt", "$lte")
LOGICAL_OPERATORS = ("$and", "$or")
_NUMERIC_OPERATORS = frozenset({"$gt", "$gte", "$lt", "$lte"})
_MISSING = object()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if _is_number(value):
        return "number"
    return "str"


def _equal(a: object, b: object) -> bool:
    """Compare like Chroma: numbers by value, booleans only with booleans."""
    if a is _MISSING or b is _MISSING:
        return False
    return _kind(a) == _kind(b) and a == b


def _check_scalar(value: object, where: str) -> None:
    if not _is_scalar(value):
        raise FilterError(
            f"{where}: expected a str, int, float or bool value, got {type(value).__name__} "
            f"{value!r}",
            {"path": where},
        )


def _check_in_list(values: object, where: str) -> None:
    if not isinstance(values, list | tuple) or not values:
        raise FilterError(
            f'{where}: "$in" takes a non-empty list of values, e.g. {{"$in": ["a", "b"]}}; '
            f"got {values!r}",
            {"path": where},
        )
    for value in values:
        _check_scalar(value, where)
    kinds = {_kind(v) for v in values}
    if len(kinds) > 1:
        raise FilterError(
            f'{where}: the values of "$in" must all be of one type (str, number or bool); '
            f"got {sorted(kinds)}",
            {"path": where},
        )


def _check_field_condition(field: str, condition: object, where: str) -> None:
    if not isinstance(condition, Mapping):
        _check_scalar(condition, where)
        return
    if not condition:
        raise FilterError(
            f'{where}: empty condition; use a value or an operator such as {{"$eq": ...}}',
            {"path": where},
        )
    for op, operand in condition.items():
        op_where = f"{where}.{op}"
        if op not in COMPARISON_OPERATORS:
            raise FilterError(
                f"{op_where}: unknown operator {op!r} for field {field!r}; known operators: "
                f"{', '.join(COMPARISON_OPERATORS)}",
                {"path": op_where},
            )
        if op == "$in":
            _check_in_list(operand, op_where)
        elif op in _NUMERIC_OPERATORS:
            if not _is_number(operand):
                raise FilterError(
                    f"{op_where}: {op} compares numbers; got {type(operand).__name__} {operand!r}",
                    {"path": op_where},
                )
        else:
            _check_scalar(operand, op_where)


def _validate(f: object, where: str) -> None:
    if not isinstance(f, Mapping):
        raise FilterError(
            f'{where}: a filter is a mapping such as {{"lang": "en"}}; got {type(f).__name__}',
            {"path": where},
        )
    for key, value in f.items():
        key_where = f"{where}.{key}" if where else str(key)
        if not isinstance(key, str) or not key:
            raise FilterError(
                f"{where or 'filter'}: field names are non-empty strings; got {key!r}",
                {"path": where},
            )
        if key in LOGICAL_OPERATORS:
            if not isinstance(value, list | tuple) or not value:
                raise FilterError(
                    f"{key_where}: {key} takes a non-empty list of filters, e.g. "
                    f'{{"{key}": [{{"a": 1}}, {{"b": 2}}]}}',
                    {"path": key_where},
                )
            for i, sub in enumerate(value):
                _validate(sub, f"{key_where}[{i}]")
        elif '"' in key:
            raise FilterError(
                f"{key_where}: field names cannot contain double quotes", {"path": key_where}
            )
        elif key.startswith("$"):
            raise FilterError(
                f"{key_where}: unknown operator {key!r} at this level; use a field name or "
                f"one of {', '.join(LOGICAL_OPERATORS)}",
                {"path": key_where},
            )
        else:
            _check_field_condition(key, value, key_where)


def validate_filter(f: object) -> None:
    """Check that ``f`` is a valid filter.

    Args:
        f: The filter; ``None`` is valid and matches everything.

    Raises:
        FilterError: ``f`` is not valid; the message names the offending part and the fix.
    """
    if f is None:
        return
    _validate(f, "")


def _compare(op: str, operand: Any) -> Callable[[object], bool]:
    if op == "$eq":
        return lambda v: _equal(v, operand)
    if op == "$ne":
        return lambda v: not _equal(v, operand)
    if op == "$in":
        values = list(operand)
        return lambda v: any(_equal(v, x) for x in values)
    x = float(operand)
    if op == "$gt":
        return lambda v: _is_number(v) and float(v) > x  # type: ignore[arg-type]
    if op == "$gte":
        return lambda v: _is_number(v) and float(v) >= x  # type: ignore[arg-type]
    if op == "$lt":
        return lambda v: _is_number(v) and float(v) < x  # type: ignore[arg-type]
    return lambda v: _is_number(v) and float(v) <= x  # type: ignore[arg-type]


def _field_predicate(field: str, condition: object) -> Predicate:
    ops: Sequence[tuple[str, Any]] = (
        list(condition.items()) if isinstance(condition, Mapping) else [("$eq", condition)]
    )
    tests = [_compare(op, operand) for op, operand in ops]
    return lambda md: all(t(md.get(field, _MISSING)) for t in tests)


def _logical(op: str, subs: list[Predicate]) -> Predicate:
    combine = all if op == "$and" else any

    def predicate(md: Mapping[str, Any]) -> bool:
        return combine(s(md) for s in subs)

    return predicate


def _build(f: Mapping[str, Any]) -> Predicate:
    parts: list[Predicate] = []
    for key, value in f.items():
        if key in LOGICAL_OPERATORS:
            parts.append(_logical(key, [_build(s) for s in value]))
        else:
            parts.append(_field_predicate(key, value))
    if len(parts) == 1:
        return parts[0]
    return lambda md: all(p(md) for p in parts)


def compile_filter(f: Mapping[str, Any] | None) -> Predicate:
    """Validate ``f`` once and return a predicate over metadata mappings.

    Args:
        f: The filter, or ``None`` for one that matches everything.

    Returns:
        A function ``metadata -> bool``.

    Raises:
        FilterError: ``f`` is not valid.
    """
    validate_filter(f)
    if not f:
        return lambda md: True
    return _build(f)


def matches(f: Mapping[str, Any] | None, metadata: Mapping[str, Any]) -> bool:
    """Return whether ``metadata`` satisfies the filter ``f``.

    Raises:
        FilterError: ``f`` is not valid.
    """
    return compile_filter(f)(metadata)


StringCodec = Callable[[str], str]


def _chroma_value(value: Any, strings: StringCodec | None) -> Any:
    if _is_number(value):
        return float(value)
    if strings is not None and isinstance(value, str):
        return strings(value)
    return value


def _chroma_operand(op: str, operand: Any, strings: StringCodec | None) -> Any:
    if op == "$in":
        return [_chroma_value(v, strings) for v in operand]
    return _chroma_value(operand, strings)


def _chroma_clauses(f: Mapping[str, Any], strings: StringCodec | None) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = []
    for key, value in f.items():
        if key in LOGICAL_OPERATORS:
            subs = [_chroma_join("$and", _chroma_clauses(s, strings)) for s in value]
            clauses.append(_chroma_join(key, subs))
        elif isinstance(value, Mapping):
            clauses.extend({key: {op: _chroma_operand(op, x, strings)}} for op, x in value.items())
        else:
            clauses.append({key: {"$eq": _chroma_value(value, strings)}})
    return clauses


def _chroma_join(op: str, clauses: list[dict[str, Any]]) -> dict[str, Any]:
    # Chroma wants at least two operands under $and/$or and one key per mapping.
    return clauses[0] if len(clauses) == 1 else {op: clauses}


def to_chroma_where(
    f: Mapping[str, Any] | None, strings: StringCodec | None = None
) -> dict[str, Any] | None:
    """Translate a filter into a Chroma ``where`` clause.

    Chroma accepts one key per mapping and at least two operands under ``$and``/``$or``, and
    wants the values of ``$in`` to share one type; the translation takes care of all three.
    Every number becomes a float: Chroma (1.5) truncates a fractional operand when it compares
    it with an *int* value (``{"p": 1.5}`` matches ``p=1``), so the Chroma store keeps every
    number as a float and these float-to-float comparisons are exact.

    Args:
        f: The filter.
        strings: Applied to every string operand, for a store that keeps string values
            encoded (embedded Chroma keeps a digest of each, see ``chroma_content``).

    Returns:
        The ``where`` mapping, or ``None`` when ``f`` matches everything.

    Raises:
        FilterError: ``f`` is not valid.
    """
    validate_filter(f)
    if not f:
        return None
    return _chroma_join("$and", _chroma_clauses(f, strings))


_SQL_TYPES = {"str": "('text')", "number": "('integer', 'real')"}


def _sql_equal_any(path: str, values: Sequence[Any], params: list[Any]) -> str:
    kind = _kind(values[0])
    if kind == "bool":
        names = ", ".join(sorted({"'true'" if v else "'false'" for v in values}))
        params.append(path)
        return f"IFNULL(json_type({{col}}, ?) IN ({names}), 0)"
    params.extend([path, path, *values])
    marks = ", ".join("?" * len(values))
    return (
        f"IFNULL(json_type({{col}}, ?) IN {_SQL_TYPES[kind]} "
        f"AND json_extract({{col}}, ?) IN ({marks}), 0)"
    )


def _sql_field(field: str, condition: object, params: list[Any]) -> list[str]:
    path = f'$."{field}"'
    ops: list[tuple[str, Any]] = (
        list(condition.items()) if isinstance(condition, Mapping) else [("$eq", condition)]
    )
    out: list[str] = []
    for op, operand in ops:
        if op == "$eq":
            out.append(_sql_equal_any(path, [operand], params))
        elif op == "$ne":
            out.append("NOT " + _sql_equal_any(path, [operand], params))
        elif op == "$in":
            out.append(_sql_equal_any(path, list(operand), params))
        else:
            sign = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
            params.extend([path, path, operand])
            out.append(
                f"IFNULL(json_type({{col}}, ?) IN {_SQL_TYPES['number']} "
                f"AND json_extract({{col}}, ?) {sign} ?, 0)"
            )
    return out


def _sql_clauses(f: Mapping[str, Any], params: list[Any]) -> list[str]:
    clauses: list[str] = []
    for key, value in f.items():
        if key in LOGICAL_OPERATORS:
            subs = ["(" + " AND ".join(_sql_clauses(s, params)) + ")" for s in value]
            clauses.append("(" + (" AND " if key == "$and" else " OR ").join(subs) + ")")
        else:
            clauses.extend(_sql_field(key, value, params))
    return clauses


def to_sql_where(f: Mapping[str, Any] | None, column: str) -> tuple[str, list[Any]]:
    """Translate a filter into an SQLite condition on a JSON ``column``, with its parameters.

    Uses ``json_type``/``json_extract`` so that booleans, numbers and strings compare exactly
    as ``matches`` does.

    Args:
        f: The filter.
        column: Name of the column holding the metadata as a JSON object (trusted, not user
            input).

    Returns:
        ``(sql, params)``; ``("1", [])`` when ``f`` matches everything.

    Raises:
        FilterError: ``f`` is not valid.
    """
    validate_filter(f)
    if not f:
        return "1", []
    params: list[Any] = []
    sql = " AND ".join(_sql_clauses(f, params))
    return sql.replace("{col}", column), params
