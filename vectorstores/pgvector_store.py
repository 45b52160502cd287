"""The PostgreSQL + pgvector backend: every replica of ragserver can share one database.

Tables, in the schema ``db_schema`` (``ragserver`` by default; see ``pgvector_db`` for its
creation and versioning):

* ``collections``: id, name, embedding model, dimension, and ``version``: a write counter
  bumped by every write in its own transaction (``version()``; keyword indexes in every
  replica compare it on each search).
* ``documents``: one row per document record, keyed by (collection id, document id), with the
  user metadata as JSONB; deleted with its collection.
* ``chunks_<collection id>``: one table per collection, because an HNSW index needs a fixed
  dimension: id, document id, position, text, metadata (JSONB, GIN ``jsonb_path_ops``) and
  the vector as ``vector(dimension)`` under an HNSW index for cosine distance.

Writes run in one transaction each; ``replace_document`` takes an advisory lock on the
document, deletes its old chunks (and chunks of the new ids that belonged to other
documents), copies the new ones in (``COPY ... FORMAT BINARY``) and upserts the record, so a
reader sees the old version or the new one and two replicas storing the same document at once
leave one copy.

A store object follows its collection by name: when its table or row is gone (another replica
deleted the collection, and perhaps created one of the same name), the name is looked up again
and the operation runs once more on the new collection; ``CollectionNotFound`` only when no
collection of that name (and model and dimension) exists. Large first loads take the bulk path
of ``pgvector_index`` (the HNSW index built once after the copy).

Search asks the HNSW index for ``top_k + 1`` rows ordered by cosine distance (with
``hnsw.ef_search`` raised to that many), the filter applied in the same query; ties at the cut
are resolved by asking for more, and hits are ordered by score then id. pgvector 0.6 filters
*after* the index scan, so when the index returns fewer rows than asked (a selective filter,
a small collection) the query runs again exactly (a scan of the matching rows), which keeps the
contract's promise that ``top_k`` hits come back whenever that many chunks match. Scores are
``1 - cosine distance``. Metadata round-trips through JSONB: an integral float written with an
exponent (``1e20``) reads back as an int of the same value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from core.errors import (
    CollectionExists,
    CollectionNotFound,
    ConfigurationError,
    InvalidRequest,
)
from core.types import Chunk, DocumentRecord, Hit
from vectorstores.base import CollectionInfo, Filter, Vector, check_embedding, check_vectors
from vectorstores.common import (
    check_dimension,
    check_top_k,
    chunk_order,
    clean_chunks,
    clean_metadata,
    page,
    prepare_query,
    sort_hits,
    stamp_record,
    validate_collection_name,
)
from vectorstores.pgvector_binding import BoundCollection, Conn
from vectorstores.pgvector_db import Database, prepare
from vectorstores.pgvector_filters import to_pg_where
from vectorstores.pgvector_index import HnswParams, begin_bulk, create_hnsw_index, end_bulk

_MAX_EF_SEARCH = 1000
_RECORD_COLUMNS = sql.SQL("id, source, content_hash, chunk_count, metadata, created_at, updated_at")
_BY_IDS = sql.SQL("id = ANY(%s)")
_BY_DOCUMENT = sql.SQL("document_id = %s")
_COPY_TYPES = ["text", "text", "integer", "text", "jsonb", "vector"]


def _check_text(value: str, what: str) -> None:
    if "\x00" in value:
        raise InvalidRequest(f"{what} contains a NUL character, which PostgreSQL cannot store")


def _check_storable(metadata: dict[str, Any], what: str) -> None:
    for key, value in metadata.items():
        _check_text(key, f"{what} key")
        if isinstance(value, str):
            _check_text(value, f"{what} {key!r}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequest(f"{what} {key!r} is {value}; only finite numbers are stored")


def _checked(chunks: Sequence[Chunk], document_id: str | None = None) -> list[Chunk]:
    cleaned = clean_chunks(chunks, document_id)
    for chunk in cleaned:
        for value, what in ((chunk.id, "chunk id"), (chunk.document_id, "document id")):
            _check_text(value, what)
        _check_text(chunk.text, f"text of chunk {chunk.id!r}")
        _check_storable(chunk.metadata, "metadata")
    return cleaned


def _record(row: Sequence[Any]) -> DocumentRecord:
    return DocumentRecord(
        id=row[0],
        source=row[1],
        content_hash=row[2],
        chunk_count=int(row[3]),
        metadata=dict(row[4]),
        created_at=float(row[5]),
        updated_at=float(row[6]),
    )


def _chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(id=row[0], document_id=row[1], text=row[2], metadata=dict(row[3]))


class PgVectorStore(BoundCollection):
    """One collection of the pgvector backend (see the module docstring)."""

    supports_filters = True

    def __init__(
        self,
        db: Database,
        schema: str,
        collection_id: int,
        info: tuple[str, str, int],
        hnsw: HnswParams,
    ) -> None:
        """Wrap a collection's rows.

        Args:
            db: The database.
            schema: The schema of ragserver's tables.
            collection_id: The collection's row id (its chunk table is ``chunks_<id>``).
            info: Name, embedding model and dimension.
            hnsw: HNSW parameters: search breadth (raised to the number of rows asked for),
                build parameters and the bulk path's (``pgvector_index``).
        """
        super().__init__(db, schema, collection_id, info)
        self._hnsw = hnsw
        self._ef_search = hnsw.ef_search

    # -- writes -------------------------------------------------------------------------

    def _remove(self, conn: Conn, where: sql.Composable, params: list[Any]) -> set[str]:
        """Delete chunks matching ``where``; return the ids of the documents they belonged to."""
        rows = conn.execute(
            sql.SQL("DELETE FROM {} WHERE {} RETURNING document_id").format(self._chunks, where),
            params,
        ).fetchall()
        return {r[0] for r in rows}

    def _copy(self, conn: Conn, chunks: Sequence[Chunk], arr: Vector, *, bulk: bool) -> None:
        """Copy rows in; after a ``begin_bulk`` that dropped the index, build it again."""
        statement = sql.SQL(
            "COPY {} (id, document_id, position, text, metadata, embedding) "
            "FROM STDIN WITH (FORMAT BINARY)"
        ).format(self._chunks)
        with conn.cursor().copy(statement) as copy:
            copy.set_types(_COPY_TYPES)
            for chunk, vector in zip(chunks, arr, strict=True):
                position = chunk_order(chunk)[0]
                row = (chunk.id, chunk.document_id, position, chunk.text, Jsonb(chunk.metadata))
                copy.write_row((*row, vector))
        if bulk:
            end_bulk(conn, self._chunks, self._hnsw)

    def _recount(self, conn: Conn, document_ids: set[str]) -> None:
        if not document_ids:
            return
        conn.execute(
            sql.SQL(
                "UPDATE {docs} d SET chunk_count = "
                "(SELECT count(*) FROM {chunks} c WHERE c.document_id = d.id) "
                "WHERE d.collection_id = %s AND d.id = ANY(%s)"
            ).format(docs=self._docs, chunks=self._chunks),
            [self._id, sorted(document_ids)],
        )

    def upsert(self, chunks: Sequence[Chunk], vectors: Vector) -> None:
        """Insert or replace chunks by id (see ``VectorStore.upsert``)."""
        cleaned = _checked(chunks)
        arr = check_vectors(vectors, len(cleaned), self.dimension, self.name)
        if not cleaned:
            return

        def write(conn: Conn) -> None:
            bulk = begin_bulk(conn, self._chunks, len(cleaned), self._hnsw)
            touched = self._remove(conn, _BY_IDS, [[c.id for c in cleaned]])
            self._copy(conn, cleaned, arr, bulk=bulk)
            self._recount(conn, touched | {c.document_id for c in cleaned})
            self._bump(conn)

        self._run(write)

    def replace_document(
        self, record: DocumentRecord, chunks: Sequence[Chunk], vectors: Vector
    ) -> None:
        """Store ``record`` and its chunks, removing its previous chunks, in one transaction."""
        cleaned = _checked(chunks, record.id)
        arr = check_vectors(vectors, len(cleaned), self.dimension, self.name)
        for value, what in ((record.id, "document id"), (record.source, "source")):
            _check_text(value, what)
        _check_storable(clean_metadata(record.metadata), "document metadata")

        def write(conn: Conn) -> None:
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", [record.id, self._id]
            )
            bulk = begin_bulk(conn, self._chunks, len(cleaned), self._hnsw)
            previous = self._get_document(conn, record.id)
            touched = self._remove(
                conn,
                sql.SQL("document_id = %s OR id = ANY(%s)"),
                [record.id, [c.id for c in cleaned]],
            )
            self._copy(conn, cleaned, arr, bulk=bulk)
            self._put_record(conn, stamp_record(record, previous, len(cleaned)))
            self._recount(conn, touched - {record.id})
            self._bump(conn)

        self._run(write)

    def _put_record(self, conn: Conn, record: DocumentRecord) -> None:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (collection_id, {}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (collection_id, id) DO UPDATE SET source = EXCLUDED.source, "
                "content_hash = EXCLUDED.content_hash, chunk_count = EXCLUDED.chunk_count, "
                "metadata = EXCLUDED.metadata, created_at = EXCLUDED.created_at, "
                "updated_at = EXCLUDED.updated_at"
            ).format(self._docs, _RECORD_COLUMNS),
            [
                self._id,
                record.id,
                record.source,
                record.content_hash,
                record.chunk_count,
                Jsonb(record.metadata),
                record.created_at,
                record.updated_at,
            ],
        )

    def delete(self, chunk_ids: Sequence[str]) -> None:
        """Delete chunks by id; missing ids are ignored."""
        if not chunk_ids:
            return

        def write(conn: Conn) -> None:
            touched = self._remove(conn, _BY_IDS, [list(chunk_ids)])
            if touched:
                self._recount(conn, touched)
                self._bump(conn)

        self._run(write)

    def delete_document(self, document_id: str) -> bool:
        """Delete a document's record and chunks (found through the document id index)."""

        def write(conn: Conn) -> bool:
            removed = self._remove(conn, _BY_DOCUMENT, [document_id])
            row = conn.execute(
                sql.SQL("DELETE FROM {} WHERE collection_id = %s AND id = %s RETURNING id").format(
                    self._docs
                ),
                [self._id, document_id],
            ).fetchone()
            if row is None and not removed:
                return False
            self._bump(conn)
            return True

        return self._run(write)

    # -- search -------------------------------------------------------------------------

    def _nearest(
        self,
        query: Vector,
        where: sql.Composable,
        params: list[Any],
        limit: int,
        exact: bool,
    ) -> list[tuple[Any, ...]]:
        def read(conn: Conn) -> list[tuple[Any, ...]]:
            statement = sql.SQL(
                "SELECT id, document_id, text, metadata, embedding <=> %s AS distance FROM {} "
                "WHERE {} ORDER BY distance LIMIT %s"
            ).format(self._chunks, where)
            if exact:  # a sequential scan of the matching rows, then a sort: exact
                conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
            elif limit > self._ef_search:
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(limit)])
            return conn.execute(statement, [query, *params, limit]).fetchall()

        # One statement on the connection's own ef_search needs no transaction (fewer trips).
        return self._run(read, read_only=not exact and limit <= self._ef_search)

    def search(
        self,
        vector: Vector,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """Cosine search through the HNSW index, exact when the index falls short."""
        check_top_k(top_k)
        query = prepare_query(vector, self.dimension, self.name)[0]
        where, params = to_pg_where(filter, sql.Identifier("metadata"))
        if not query.any():  # no direction: every similarity is 0 (pgvector would say NaN)
            template = (
                'SELECT id, document_id, text, metadata FROM {} WHERE {} ORDER BY id COLLATE "C" '
                "LIMIT %s"
            )
            rows = self._rows(template, [*params, top_k], where)
            return sort_hits([Hit(_chunk(row), 0.0) for row in rows], top_k, score_threshold)
        asked = top_k + 1  # one more than wanted, to see whether the cut falls inside a tie
        exact = asked > _MAX_EF_SEARCH
        while True:
            rows = self._nearest(query, where, params, asked, exact)
            if len(rows) < asked and not exact:
                exact = True  # the index may have missed matching rows: ask exactly
                continue
            if len(rows) < asked or rows[-1][4] != rows[top_k - 1][4]:
                break
            asked *= 2  # ties at the cut: fetch more so they can be ordered by id
            exact = exact or asked > _MAX_EF_SEARCH
        hits = [Hit(_chunk(row), 1.0 - float(row[4])) for row in rows]
        return sort_hits(hits, top_k, score_threshold)

    # -- reads --------------------------------------------------------------------------

    def count(self) -> int:
        """Return the number of chunks stored."""
        rows = self._rows("SELECT count(*) FROM {}", [])
        return int(rows[0][0]) if rows else 0

    def _get_document(self, conn: Conn, document_id: str) -> DocumentRecord | None:
        row = conn.execute(
            sql.SQL("SELECT {} FROM {} WHERE collection_id = %s AND id = %s").format(
                _RECORD_COLUMNS, self._docs
            ),
            [self._id, document_id],
        ).fetchone()
        return _record(row) if row else None

    def get_document(self, document_id: str) -> DocumentRecord | None:
        """Return a document's record, or None."""
        return self._read_documents(lambda conn: self._get_document(conn, document_id))

    def _documents_where(self, filter: Filter | None) -> tuple[sql.Composable, list[Any]]:
        view = sql.SQL("(metadata || jsonb_build_object('source', source, 'document_id', id))")
        return to_pg_where(filter, view)

    def list_documents(
        self, filter: Filter | None = None, limit: int | None = None, offset: int = 0
    ) -> list[DocumentRecord]:
        """Return records ordered by source, filtered on metadata, ``source``, ``document_id``."""
        page([], limit, offset)  # checks the bounds
        where, params = self._documents_where(filter)
        statement = sql.SQL(
            "SELECT {} FROM {} WHERE collection_id = %s AND {} "
            'ORDER BY source COLLATE "C", id COLLATE "C" LIMIT %s OFFSET %s'
        ).format(_RECORD_COLUMNS, self._docs, where)
        rows = self._read_documents(
            lambda conn: conn.execute(statement, [self._id, *params, limit, offset]).fetchall()
        )
        return [_record(r) for r in rows]

    def count_documents(self, filter: Filter | None = None) -> int:
        """Return the number of documents matching ``filter``."""
        where, params = self._documents_where(filter)
        statement = sql.SQL("SELECT count(*) FROM {} WHERE collection_id = %s AND {}").format(
            self._docs, where
        )
        rows = self._read_documents(
            lambda conn: [r for r in conn.execute(statement, [self._id, *params]) if r[0]]
        )
        return int(rows[0][0]) if rows else 0

    def _select_chunks(
        self, where: sql.Composable, params: list[Any], order: sql.Composable
    ) -> list[Chunk]:
        template = "SELECT id, document_id, text, metadata FROM {} WHERE {} ORDER BY {}"
        rows = self._rows(template, params, where, order)
        return [_chunk(r) for r in rows]

    def get_chunks(self, document_id: str) -> list[Chunk]:
        """Return a document's chunks ordered by position, then id."""
        return self._select_chunks(_BY_DOCUMENT, [document_id], sql.SQL('position, id COLLATE "C"'))

    def all_chunks(self) -> list[Chunk]:
        """Return every chunk, ordered by document id, position, id."""
        order = sql.SQL('document_id COLLATE "C", position, id COLLATE "C"')
        return self._select_chunks(sql.SQL("TRUE"), [], order)

    def persist(self) -> None:
        """Do nothing: every write is committed when it returns."""

    def close(self) -> None:
        """Do nothing: the client owns the connections."""


class PgVectorClient:
    """The collections of one PostgreSQL database (see the module docstring)."""

    backend = "pgvector"

    def __init__(
        self,
        data_dir: Path | None = None,
        url: str = "",
        db_schema: str = "ragserver",
        pool_size: int = 8,
        connect_timeout_s: int = 5,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        hnsw_ef_search: int = 64,
        bulk_min_rows: int = 1000,
        maintenance_work_mem: str = "512MB",
        **unknown: Any,
    ) -> None:
        """Connect, make sure the extension and the tables exist, check the schema version.

        Args:
            data_dir: Unused: everything lives in the database.
            url: libpq URI (``postgresql://user:password@host:5432/db``; a unix socket
                directory through ``?host=/dir``).
            db_schema: PostgreSQL schema of ragserver's tables.
            pool_size: Most connections open at once (idle ones are reused).
            connect_timeout_s: Seconds a new connection, or a free one, may take.
            hnsw_m: HNSW graph degree of new collections.
            hnsw_ef_construction: HNSW build breadth of new collections.
            hnsw_ef_search: HNSW search breadth.
            bulk_min_rows: Smallest write that builds the HNSW index after the copy when
                the table holds no more rows than it writes (0: never; ``pgvector_index``).
            maintenance_work_mem: PostgreSQL memory for such an index build.
            **unknown: Refused; present so that a misspelt option is a configuration error.

        Raises:
            BackendUnavailable: the server cannot be reached or refuses the login.
            ConfigurationError: bad URL or option, no usable vector extension, a newer schema.
        """
        if unknown:
            raise ConfigurationError(f"unknown pgvector options: {sorted(unknown)}")
        if not db_schema or "\x00" in db_schema:
            raise ConfigurationError("RAG_VECTORSTORE__PGVECTOR__DB_SCHEMA must not be empty")
        self._hnsw = HnswParams(
            m=hnsw_m,
            ef_construction=hnsw_ef_construction,
            ef_search=min(hnsw_ef_search, _MAX_EF_SEARCH),
            bulk_min_rows=bulk_min_rows,
            maintenance_work_mem=maintenance_work_mem,
        )
        self._db = Database(
            url,
            pool_size=pool_size,
            connect_timeout_s=connect_timeout_s,
            session={"hnsw.ef_search": str(self._hnsw.ef_search)},
        )
        self._schema = db_schema
        self._collections = sql.Identifier(db_schema, "collections")
        prepare(self._db, db_schema)

    def _store(self, row: Sequence[Any]) -> PgVectorStore:
        info = (str(row[1]), str(row[2]), int(row[3]))
        return PgVectorStore(self._db, self._schema, int(row[0]), info, self._hnsw)

    def _find(self, name: str) -> PgVectorStore | None:
        with self._db.connection() as conn:
            row = conn.execute(
                sql.SQL(
                    "SELECT id, name, embedding_model, dimension FROM {} WHERE name = %s"
                ).format(self._collections),
                [name],
            ).fetchone()
        return self._store(row) if row else None

    def _create_table(self, conn: Conn, collection_id: int, dim: int) -> None:
        table = sql.Identifier(self._schema, f"chunks_{collection_id}")
        for statement in (
            "CREATE TABLE {t} (id text PRIMARY KEY, document_id text NOT NULL, "
            "position integer NOT NULL, text text NOT NULL, metadata jsonb NOT NULL, "
            "embedding vector({dim}) NOT NULL)",
            "CREATE INDEX ON {t} (document_id)",
            "CREATE INDEX ON {t} USING gin (metadata jsonb_path_ops)",
        ):
            conn.execute(sql.SQL(statement).format(t=table, dim=sql.Literal(dim)))
        create_hnsw_index(conn, table, self._hnsw)

    def create_collection(self, name: str, embedding_model: str, dimension: int) -> PgVectorStore:
        """Create a collection and its chunk table; raises ``CollectionExists`` if it exists."""
        validate_collection_name(name)
        check_dimension(dimension)
        try:
            with self._db.transaction() as conn:
                row = conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (name, embedding_model, dimension, created_at) "
                        "VALUES (%s, %s, %s, %s) RETURNING id, name, embedding_model, dimension"
                    ).format(self._collections),
                    [name, embedding_model, dimension, time.time()],
                ).fetchone()
                assert row is not None
                self._create_table(conn, int(row[0]), dimension)
        except psycopg.errors.UniqueViolation as exc:
            raise CollectionExists(f"collection '{name}' exists already", {"name": name}) from exc
        return self._store(row)

    def get_collection(self, name: str) -> PgVectorStore:
        """Open a collection; raises ``CollectionNotFound``."""
        store = self._find(name)
        if store is None:
            raise CollectionNotFound(f"collection '{name}' does not exist", {"name": name})
        return store

    def get_or_create_collection(
        self, name: str, embedding_model: str, dimension: int
    ) -> PgVectorStore:
        """Open a collection, creating it first; ``EmbeddingMismatch`` if it differs."""
        validate_collection_name(name)
        check_dimension(dimension)
        store = self._find(name)
        if store is None:
            try:
                return self.create_collection(name, embedding_model, dimension)
            except CollectionExists:  # another replica created it meanwhile
                store = self.get_collection(name)
        check_embedding(name, store.embedding_model, store.dimension, embedding_model, dimension)
        return store

    def list_collections(self) -> list[CollectionInfo]:
        """Return every collection, ordered by name."""
        with self._db.connection() as conn:
            rows = conn.execute(
                sql.SQL(
                    'SELECT id, name, embedding_model, dimension FROM {} ORDER BY name COLLATE "C"'
                ).format(self._collections)
            ).fetchall()
        stores = [self._store(row) for row in rows]
        return [
            CollectionInfo(s.name, s.embedding_model, s.dimension, s.count(), s.count_documents())
            for s in stores
        ]

    def delete_collection(self, name: str) -> bool:
        """Delete a collection, its documents and its chunk table; False if it did not exist."""
        with self._db.transaction() as conn:
            row = conn.execute(
                sql.SQL("DELETE FROM {} WHERE name = %s RETURNING id").format(self._collections),
                [name],
            ).fetchone()
            if row is None:
                return False
            table = sql.Identifier(self._schema, f"chunks_{int(row[0])}")
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        return True

    def close(self) -> None:
        """Close the pooled connections."""
        self._db.close()
