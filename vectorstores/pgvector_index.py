"""The HNSW index of a pgvector chunk table, and the bulk path that builds it after a load.

pgvector adds each row to the HNSW graph as it is written, one buffer-locked page at a time;
building the graph once over rows already in the table runs in memory (up to
``maintenance_work_mem``) and is far cheaper per row (on the 2-core development machine: 20,000
rows built in 10 s, against about 210 s of row-by-row inserts). So a write of at least
``bulk_min_rows`` chunks into a table holding no more rows than it writes:

1. locks the table (``ACCESS EXCLUSIVE``: searches of this collection wait for the write,
   which only happens while the table is empty or small next to the write),
2. drops the HNSW index, copies the rows in, and
3. builds the index again with ``maintenance_work_mem`` raised for the transaction,

all in the write's own transaction: a reader sees the old rows with their index or the new
ones with theirs. Smaller writes, and writes into a larger table, insert row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class HnswParams:
    """How a collection's HNSW index is built and searched."""

    m: int = 16
    ef_construction: int = 64
    ef_search: int = 64
    bulk_min_rows: int = 1000
    maintenance_work_mem: str = "512MB"


def create_hnsw_index(
    conn: psycopg.Connection[Any], table: sql.Identifier, params: HnswParams
) -> None:
    """Create the cosine HNSW index on ``table``'s embedding column."""
    conn.execute(
        sql.SQL(
            "CREATE INDEX ON {t} USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = {m}, ef_construction = {ef})"
        ).format(t=table, m=sql.Literal(params.m), ef=sql.Literal(params.ef_construction))
    )


def _hnsw_index(conn: psycopg.Connection[Any], table: sql.Identifier) -> sql.Identifier | None:
    row = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE i.indrelid = %s::regclass AND a.amname = 'hnsw'",
        [table.as_string(conn)],
    ).fetchone()
    return sql.Identifier(str(row[0]), str(row[1])) if row else None


def _rows_at_most(conn: psycopg.Connection[Any], table: sql.Identifier, limit: int) -> bool:
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT %s) AS t").format(table),
        [limit + 1],
    ).fetchone()
    return row is not None and int(row[0]) <= limit


def begin_bulk(
    conn: psycopg.Connection[Any], table: sql.Identifier, rows: int, params: HnswParams
) -> bool:
    """Start the bulk path for a write of ``rows`` rows if it pays (see the module docstring).

    Call first thing in the write's transaction; when it returns True, call ``end_bulk``
    after the rows are copied.
    """
    if params.bulk_min_rows <= 0 or rows < params.bulk_min_rows:
        return False
    if not _rows_at_most(conn, table, rows):  # a bounded count: no lock taken for big tables
        return False
    conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
    index = _hnsw_index(conn, table)
    if index is None or not _rows_at_most(conn, table, rows):  # grew while we waited
        return False
    conn.execute(sql.SQL("DROP INDEX {}").format(index))
    return True


def end_bulk(conn: psycopg.Connection[Any], table: sql.Identifier, params: HnswParams) -> None:
    """Build the HNSW index over the table's rows, with more memory for this transaction."""
    conn.execute(
        "SELECT set_config('maintenance_work_mem', %s, true)", [params.maintenance_work_mem]
    )
    create_hnsw_index(conn, table, params)
