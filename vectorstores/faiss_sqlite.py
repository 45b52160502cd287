"""The SQLite side of the FAISS backend: the source of truth for one collection.

Tables: ``meta`` (key/value: name, embedding model, dimension, created, uuid), ``chunks``
(``seq`` is an ``AUTOINCREMENT`` row id, never reused, and is the chunk's FAISS id; text and
metadata as JSON), ``vectors`` (the unit vector of each ``seq`` as a float32 blob, apart so
that scanning chunks stays cheap), ``chunk_meta`` (one row per chunk and metadata key, indexed
by key, kind and value: filters become index lookups and set operations, not a JSON scan) and
``documents`` (the records, with a JSON ``view`` of metadata + ``source`` + ``document_id``
that ``list_documents`` filters with ``filters.to_sql_where``). Replacing a chunk gives
it a new ``seq``, so a ``seq`` always names the same vector and an index file can be checked
against SQLite by its id set alone.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from core.types import Chunk, DocumentRecord
from vectorstores.base import Filter, Vector
from vectorstores.common import chunk_order, document_filter_view
from vectorstores.faiss_index import Ids
from vectorstores.filters import to_sql_where, validate_filter
from vectorstores.sqlite_util import CHECKPOINT_WAIT_MS as CHECKPOINT_WAIT_MS
from vectorstores.sqlite_util import checkpoint_truncate as checkpoint_truncate
from vectorstores.sqlite_util import connect as connect
from vectorstores.sqlite_util import transaction as transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    document_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (document_id, position, id);
CREATE TABLE IF NOT EXISTS vectors (seq INTEGER PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS chunk_meta (
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    value NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (key, kind, value, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunk_meta_by_seq ON chunk_meta (seq);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    metadata TEXT NOT NULL,
    view TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_by_source ON documents (source, id);
"""
_BATCH = 500  # ids per "IN (...)" list, under SQLite's parameter limit
_CHUNK_COLS = "seq, id, document_id, text, metadata"
_DOC_COLS = (
    "d.id, d.source, d.content_hash, d.metadata, d.created_at, d.updated_at, "
    "(SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id)"
)


def init_schema(conn: sqlite3.Connection, meta: dict[str, str]) -> None:
    """Create the tables and store the collection's metadata."""
    conn.executescript(SCHEMA)
    with transaction(conn):
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    """Return the ``meta`` table as a dict."""
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def _batches(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


# -- writes (inside a transaction) ------------------------------------------------------


def seqs_of_document(conn: sqlite3.Connection, document_id: str) -> list[int]:
    """Return the row ids of a document's chunks (uses the ``document_id`` index)."""
    rows = conn.execute("SELECT seq FROM chunks WHERE document_id = ?", (document_id,))
    return [r[0] for r in rows]


def existing_chunks(conn: sqlite3.Connection, chunk_ids: Sequence[str]) -> list[tuple[int, str]]:
    """Return ``(seq, document_id)`` of the chunks among ``chunk_ids`` that exist."""
    out: list[tuple[int, str]] = []
    for batch in _batches(chunk_ids):
        sql = f"SELECT seq, document_id FROM chunks WHERE id IN ({_marks(len(batch))})"
        out.extend(conn.execute(sql, list(batch)).fetchall())
    return out


def delete_seqs(conn: sqlite3.Connection, seqs: Sequence[int]) -> None:
    """Delete chunks, their vectors and their metadata rows by row id."""
    for batch in _batches(seqs):
        for table in ("chunks", "vectors", "chunk_meta"):
            conn.execute(f"DELETE FROM {table} WHERE seq IN ({_marks(len(batch))})", list(batch))


def insert_chunks(conn: sqlite3.Connection, chunks: Sequence[Chunk], vectors: Vector) -> Ids:
    """Insert chunks (their ids must not exist) and return their new row ids."""
    seqs = np.zeros(len(chunks), dtype=np.int64)
    sql = "INSERT INTO chunks (id, document_id, position, text, metadata) VALUES (?, ?, ?, ?, ?)"
    meta_rows: list[tuple[str, str, Any, int]] = []
    for i, chunk in enumerate(chunks):
        cur = conn.execute(
            sql,
            (
                chunk.id,
                chunk.document_id,
                chunk_order(chunk)[0],
                chunk.text,
                json.dumps(chunk.metadata),
            ),
        )
        seq = int(cur.lastrowid or 0)
        seqs[i] = seq
        meta_rows.extend((k, *_encode(v), seq) for k, v in chunk.metadata.items())
    blobs = np.ascontiguousarray(vectors, dtype=np.float32)
    conn.executemany(
        "INSERT INTO vectors VALUES (?, ?)",
        ((int(seq), blobs[i].tobytes()) for i, seq in enumerate(seqs)),
    )
    conn.executemany("INSERT INTO chunk_meta VALUES (?, ?, ?, ?)", meta_rows)
    return seqs


def upsert_document(conn: sqlite3.Connection, record: DocumentRecord) -> None:
    """Insert or replace a document record."""
    conn.execute(
        "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            record.id,
            record.source,
            record.content_hash,
            json.dumps(record.metadata),
            json.dumps(document_filter_view(record)),
            record.created_at,
            record.updated_at,
        ),
    )


def delete_document_row(conn: sqlite3.Connection, document_id: str) -> bool:
    """Delete a document record; True if it existed."""
    return conn.execute("DELETE FROM documents WHERE id = ?", (document_id,)).rowcount > 0


# -- reads ------------------------------------------------------------------------------


def all_seqs(conn: sqlite3.Connection) -> Ids:
    """Return every chunk row id, ascending."""
    rows = conn.execute("SELECT seq FROM chunks ORDER BY seq").fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def iter_vectors(
    conn: sqlite3.Connection, seqs: Ids, dimension: int
) -> Iterator[tuple[Ids, Vector]]:
    """Yield ``(seqs, vectors)`` batches read from the stored blobs."""
    for batch in _batches(seqs.tolist()):
        rows = conn.execute(
            f"SELECT seq, vector FROM vectors WHERE seq IN ({_marks(len(batch))})", batch
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        yield ids, vecs.reshape(len(rows), dimension)


def _encode(value: Any) -> tuple[str, Any]:
    """Return ``(kind, value)`` as ``chunk_meta`` stores it: numbers, strings, booleans apart."""
    if isinstance(value, bool):
        return "b", int(value)
    if isinstance(value, int | float):
        return "n", value
    return "s", value


_FIELD = "SELECT seq FROM chunk_meta WHERE key = ? AND kind = ? AND value"
_RANGE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _field_select(key: str, op: str, operand: Any, params: list[Any]) -> str:
    if op in _RANGE:
        params.extend([key, "n", operand])
        return f"{_FIELD} {_RANGE[op]} ?"
    values = list(operand) if op == "$in" else [operand]
    kind = _encode(values[0])[0]
    params.extend([key, kind, *(_encode(v)[1] for v in values)])
    match = f"{_FIELD} IN ({_marks(len(values))})"
    return f"SELECT seq FROM chunks EXCEPT {match}" if op == "$ne" else match


def _combine(operator: str, parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return f" {operator} ".join(f"SELECT seq FROM ({p})" for p in parts)


def _filter_select(f: Filter, params: list[Any]) -> str:
    parts: list[str] = []
    for key, value in f.items():
        if key in ("$and", "$or"):
            subs = [_filter_select(s, params) for s in value]
            parts.append(_combine("INTERSECT" if key == "$and" else "UNION", subs))
        else:
            ops = value.items() if isinstance(value, Mapping) else [("$eq", value)]
            parts.extend(_field_select(key, op, operand, params) for op, operand in ops)
    return _combine("INTERSECT", parts)


def filter_seqs(conn: sqlite3.Connection, filter: Filter) -> Ids:
    """Return the row ids of the chunks whose metadata match ``filter``.

    Each condition is an index range on ``chunk_meta`` (``$ne`` is all chunks ``EXCEPT`` the
    equal ones); ``$and``/``$or`` are ``INTERSECT``/``UNION``. Semantics are those of
    ``filters.matches``: a kind column keeps booleans, numbers and strings apart.
    """
    validate_filter(filter)
    params: list[Any] = []
    sql = _filter_select(filter, params)
    rows = conn.execute(sql, params).fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def _chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(id=row[1], document_id=row[2], text=row[3], metadata=json.loads(row[4]))


def chunks_by_seqs(conn: sqlite3.Connection, seqs: Iterable[int]) -> dict[int, Chunk]:
    """Return the chunks of the given row ids that exist, by row id."""
    out: dict[int, Chunk] = {}
    for batch in _batches([int(s) for s in seqs]):
        sql = f"SELECT {_CHUNK_COLS} FROM chunks WHERE seq IN ({_marks(len(batch))})"
        out.update((row[0], _chunk(row)) for row in conn.execute(sql, batch))
    return out


def chunks_of_document(conn: sqlite3.Connection, document_id: str) -> list[Chunk]:
    """Return a document's chunks ordered by position, then id."""
    sql = f"SELECT {_CHUNK_COLS} FROM chunks WHERE document_id = ? ORDER BY position, id"
    return [_chunk(r) for r in conn.execute(sql, (document_id,))]


def every_chunk(conn: sqlite3.Connection) -> list[Chunk]:
    """Return every chunk ordered by document id, position, id."""
    sql = f"SELECT {_CHUNK_COLS} FROM chunks ORDER BY document_id, position, id"
    return [_chunk(r) for r in conn.execute(sql)]


def count_chunks(conn: sqlite3.Connection) -> int:
    """Return the number of chunks."""
    return int(conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])


def _record(row: Sequence[Any]) -> DocumentRecord:
    return DocumentRecord(
        id=row[0],
        source=row[1],
        content_hash=row[2],
        metadata=json.loads(row[3]),
        created_at=row[4],
        updated_at=row[5],
        chunk_count=row[6],
    )


def get_document(conn: sqlite3.Connection, document_id: str) -> DocumentRecord | None:
    """Return a document record with its live chunk count, or None."""
    row = conn.execute(f"SELECT {_DOC_COLS} FROM documents d WHERE d.id = ?", (document_id,))
    found = row.fetchone()
    return _record(found) if found else None


def list_documents(
    conn: sqlite3.Connection, filter: Filter | None, limit: int | None, offset: int
) -> list[DocumentRecord]:
    """Return records ordered by source then id, filtered on their ``view``."""
    sql, params = to_sql_where(filter, "d.view")
    query = f"SELECT {_DOC_COLS} FROM documents d WHERE {sql} ORDER BY d.source, d.id"
    query += " LIMIT ? OFFSET ?"
    params += [-1 if limit is None else limit, offset]
    return [_record(r) for r in conn.execute(query, params)]


def count_documents(conn: sqlite3.Connection, filter: Filter | None) -> int:
    """Return the number of records matching ``filter``."""
    sql, params = to_sql_where(filter, "view")
    return int(conn.execute(f"SELECT COUNT(*) FROM documents WHERE {sql}", params).fetchone()[0])
