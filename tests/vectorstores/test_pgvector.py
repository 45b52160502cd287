"""The pgvector backend under the shared contract, against a real PostgreSQL 16 + pgvector.

One server per test session (``pg_cluster``); each test gets a schema of its own, so tests do
not see each other's collections. Start-up errors (login, extension, schema version) each
make what they need: a database, a role.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import given, settings
from psycopg import sql
from psycopg.types.json import Jsonb

from core.errors import BackendUnavailable, ConfigurationError, FilterError, Overloaded
from core.types import Chunk
from tests.pg import PgCluster, unique
from tests.vectorstores.contract import (
    DIM,
    MODEL,
    VectorStoreContract,
    ids,
    make_doc,
    rand_vectors,
)
from tests.vectorstores.test_filters import filters, metadatas
from vectorstores.base import VectorStoreClient
from vectorstores.filters import matches
from vectorstores.pgvector_db import SCHEMA_VERSION
from vectorstores.pgvector_filters import to_pg_where
from vectorstores.pgvector_store import PgVectorClient
from vectorstores.registry import create_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def contract_db(pg_cluster: PgCluster) -> str:
    """One database (with the vector extension) for this module's tests."""
    return pg_cluster.create_database()


class TestPgVectorContract(VectorStoreContract):
    @pytest.fixture
    def client(
        self, pg_cluster: PgCluster, contract_db: str, data_dir: Path
    ) -> Iterator[VectorStoreClient]:
        self._url = pg_cluster.url(contract_db)
        self._schema = unique("t")
        client = PgVectorClient(data_dir, url=self._url, db_schema=self._schema)
        yield client
        client.close()

    def reopen(self, client: VectorStoreClient, data_dir: Path) -> VectorStoreClient:
        client.close()
        return PgVectorClient(data_dir, url=self._url, db_schema=self._schema)


@pytest.fixture
def pg_client(pg_cluster: PgCluster, contract_db: str, tmp_path: Path) -> Iterator[PgVectorClient]:
    client = PgVectorClient(tmp_path, url=pg_cluster.url(contract_db), db_schema=unique("t"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def pg_conn(pg_cluster: PgCluster, contract_db: str) -> Iterator[psycopg.Connection[Any]]:
    with pg_cluster.admin(contract_db) as conn:
        yield conn


@settings(max_examples=200, deadline=None)
@given(flt=filters, rows=metadatas)
def test_sql_translation_agrees_with_matches(
    pg_conn: psycopg.Connection[Any], flt: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    """PostgreSQL selects exactly the rows ``matches`` accepts, for arbitrary filters."""
    condition, params = to_pg_where(flt, sql.Identifier("md"))
    with pg_conn.transaction(force_rollback=True):
        pg_conn.execute("CREATE TEMP TABLE t (i integer, md jsonb) ON COMMIT DROP")
        with pg_conn.cursor() as cur:
            cur.executemany("INSERT INTO t VALUES (%s, %s)", list(enumerate(map(Jsonb, rows))))
        got = pg_conn.execute(
            sql.SQL("SELECT i FROM t WHERE {} ORDER BY i").format(condition), params
        ).fetchall()
    assert [i for (i,) in got] == [i for i, r in enumerate(rows) if matches(flt, r)]


def _one_line(exc: BaseException) -> str:
    message = str(exc)
    assert "\n" not in message, message
    return message


# -- storage ----------------------------------------------------------------------------------


def test_tables_vectors_and_hnsw_index(pg_cluster: PgCluster, contract_db: str, tmp_path: Path):
    schema = unique("t")
    client = create_client(
        "pgvector", tmp_path, {"url": pg_cluster.url(contract_db), "db_schema": schema}
    )
    store = client.create_collection("notes", MODEL, DIM)
    rec, chunks = make_doc("d1", 3, {"lang": "en"})
    store.replace_document(rec, chunks, rand_vectors(3))
    with pg_cluster.admin(contract_db) as conn:
        version = conn.execute(
            sql.SQL("SELECT value FROM {} WHERE key = 'schema_version'").format(
                sql.Identifier(schema, "meta")
            )
        ).fetchone()
        (cid,) = conn.execute(
            sql.SQL("SELECT id FROM {} WHERE name = 'notes'").format(
                sql.Identifier(schema, "collections")
            )
        ).fetchone()
        column_type = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attname = 'embedding'",
            [f'{schema}."chunks_{cid}"'],
        ).fetchone()
        indexes = [
            r[0]
            for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
                [schema, f"chunks_{cid}"],
            )
        ]
        metadata = conn.execute(
            sql.SQL("SELECT metadata FROM {} ORDER BY id").format(
                sql.Identifier(schema, f"chunks_{cid}")
            )
        ).fetchall()
    assert version == (str(SCHEMA_VERSION),)
    assert column_type == (f"vector({DIM})",)
    assert any("USING hnsw (embedding vector_cosine_ops)" in i for i in indexes), indexes
    assert any("USING gin (metadata jsonb_path_ops)" in i for i in indexes), indexes
    assert metadata[0][0] == {"lang": "en", "position": 0}
    assert client.delete_collection("notes") is True
    with pg_cluster.admin(contract_db) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = %s",
            [schema, f"chunks_{cid}"],
        ).fetchone()
    assert left == (0,)
    client.close()


def test_hnsw_search_finds_the_exact_neighbours(pg_client: PgVectorClient) -> None:
    store = pg_client.create_collection("big-one", MODEL, DIM)
    n = 3000
    vectors = rand_vectors(n, seed=5)
    store.upsert([Chunk(f"c{i:05d}", f"d{i % 50}", "t") for i in range(n)], vectors)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rand_vectors(20, seed=6)
    found = 0
    for query in queries:
        exact = np.argsort(-(unit @ (query / np.linalg.norm(query))))[:10]
        found += len({f"c{i:05d}" for i in exact} & set(ids(store.search(query, top_k=10))))
    # HNSW is approximate; in 8 dimensions at m=16 it misses next to nothing.
    assert found / (10 * len(queries)) >= 0.9


def test_zero_query_scores_zero_like_the_reference(pg_client: PgVectorClient) -> None:
    from vectorstores.memory import MemoryStore

    reference = MemoryStore("ref", MODEL, DIM)
    store = pg_client.create_collection("zeros", MODEL, DIM)
    chunks = [Chunk(f"c{i}", "d", "t", {"odd": i % 2 == 1}) for i in (5, 3, 8, 1, 4)]
    for s in (store, reference):
        s.upsert(chunks, rand_vectors(5))
    zero = np.zeros(DIM, dtype=np.float32)
    for flt in (None, {"odd": True}):
        got = store.search(zero, top_k=2, filter=flt)
        assert [(h.chunk.id, h.score) for h in got] == [
            (h.chunk.id, h.score) for h in reference.search(zero, top_k=2, filter=flt)
        ]
    assert ids(store.search(zero, top_k=2)) == ["c1", "c3"]
    assert store.search(zero, top_k=2, score_threshold=0.5) == []


def test_filters_are_parameters_never_sql(pg_client: PgVectorClient) -> None:
    nasty = "x'); DROP TABLE documents; --"
    condition, params = to_pg_where({nasty: nasty, "n": {"$gt": 1}}, sql.Identifier("metadata"))
    text = condition.as_string(None)
    assert nasty not in text
    assert "DROP" not in text
    assert params[-1] == 1.0
    store = pg_client.create_collection("nasty", MODEL, DIM)
    store.upsert(
        [Chunk("c1", "d1", "t", {nasty: nasty}), Chunk("c2", "d1", "t", {nasty: "other"})],
        rand_vectors(2),
    )
    assert ids(store.search(rand_vectors(1)[0], top_k=5, filter={nasty: nasty})) == ["c1"]
    assert ids(store.search(rand_vectors(1)[0], top_k=5, filter={nasty: {"$ne": nasty}})) == ["c2"]
    with pytest.raises(FilterError):
        store.search(rand_vectors(1)[0], filter={'a"b': 1})
    assert store.count() == 2


def test_unstorable_values_are_refused_and_store_nothing(pg_client: PgVectorClient) -> None:
    store = pg_client.create_collection("refuse", MODEL, DIM)
    for chunk in [
        Chunk("c1", "d1", "nul \x00 inside"),
        Chunk("c1", "d1", "t", {"k": "nul \x00"}),
        Chunk("c1", "d1", "t", {"k": float("nan")}),
    ]:
        with pytest.raises(Exception, match="NUL|finite") as info:
            store.upsert([chunk], rand_vectors(1))
        assert type(info.value).__name__ == "InvalidRequest"
    assert store.count() == 0


def test_concurrent_replaces_of_one_document_leave_one_copy(
    pg_cluster: PgCluster, contract_db: str, tmp_path: Path
) -> None:
    """Two clients (as two replicas would) store the same document at once, many times."""
    schema = unique("t")
    url = pg_cluster.url(contract_db)
    clients = [PgVectorClient(tmp_path, url=url, db_schema=schema) for _ in range(2)]
    stores = [c.get_or_create_collection("shared", MODEL, DIM) for c in clients]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def write(k: int) -> None:
        try:
            for round_ in range(15):
                barrier.wait(timeout=60)
                n = 3 + (round_ + k) % 4
                rec, chunks = make_doc("same", n, {"writer": k}, content_hash=f"h{k}{round_}")
                stores[k].replace_document(rec, chunks, rand_vectors(n, seed=round_))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    record = stores[0].get_document("same")
    assert record is not None
    chunks = stores[1].get_chunks("same")
    assert record.chunk_count == len(chunks) == stores[0].count()
    assert {c.metadata["writer"] for c in chunks} == {record.metadata["writer"]}
    assert [c.id for c in chunks] == [f"same:{p:05d}" for p in range(len(chunks))]
    for c in clients:
        c.close()


def test_pool_bounds_the_connections_and_says_when_all_are_busy(
    pg_cluster: PgCluster, contract_db: str, tmp_path: Path
) -> None:
    """Two writers wait on a document lock holding both connections; a third caller gets 503."""
    schema = unique("t")
    url = pg_cluster.url(contract_db)
    client = PgVectorClient(tmp_path, url=url, db_schema=schema, pool_size=2, connect_timeout_s=1)
    store = client.create_collection("busy", MODEL, DIM)
    with pg_cluster.admin(contract_db) as admin:
        (cid,) = admin.execute(
            sql.SQL("SELECT id FROM {} WHERE name = 'busy'").format(
                sql.Identifier(schema, "collections")
            )
        ).fetchone()
        admin.execute("SELECT pg_advisory_lock(hashtextextended('d1', %s))", [cid])
        writers = []
        for seed in range(2):
            rec, chunks = make_doc("d1", 2, {"seed": seed})
            thread = threading.Thread(
                target=store.replace_document, args=(rec, chunks, rand_vectors(2, seed=seed))
            )
            thread.start()
            writers.append(thread)
        deadline = time.monotonic() + 60  # a safety net: the writers block within milliseconds
        while admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"
            " AND query LIKE %s",
            [contract_db, "%pg_advisory_xact_lock%"],
        ).fetchone() != (2,):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(Overloaded, match="all 2 connections .* stayed busy"):
            store.count()
        admin.execute("SELECT pg_advisory_unlock(hashtextextended('d1', %s))", [cid])
        for thread in writers:
            thread.join(timeout=60)
    assert store.count() == 2
    assert store.get_document("d1") is not None
    client.close()


# -- start-up errors ----------------------------------------------------------------------------


def test_schema_of_a_newer_version_is_refused(
    pg_cluster: PgCluster, contract_db: str, tmp_path: Path
) -> None:
    schema = unique("t")
    url = pg_cluster.url(contract_db)
    PgVectorClient(tmp_path, url=url, db_schema=schema).close()
    with pg_cluster.admin(contract_db) as conn:
        conn.execute(
            sql.SQL("UPDATE {} SET value = %s WHERE key = 'schema_version'").format(
                sql.Identifier(schema, "meta")
            ),
            [str(SCHEMA_VERSION + 1)],
        )
    with pytest.raises(ConfigurationError) as info:
        PgVectorClient(tmp_path, url=url, db_schema=schema)
    message = _one_line(info.value)
    assert f"version {SCHEMA_VERSION + 1}" in message
    assert "upgrade ragserver" in message
    assert pg_cluster.socket_dir in message


def test_wrong_password_names_the_host_and_the_fix(pg_cluster: PgCluster, tmp_path: Path):
    role = pg_cluster.create_role(password="right-one")
    db = pg_cluster.create_database(owner=role)
    url = pg_cluster.url(db, user=role, password="wrong-one")
    with pytest.raises(BackendUnavailable) as info:
        PgVectorClient(tmp_path, url=url)
    message = _one_line(info.value)
    assert pg_cluster.socket_dir in message
    assert f"user '{role}'" in message
    assert "password" in message
    assert "RAG_VECTORSTORE__PGVECTOR__URL" in message
    assert "wrong-one" not in message
    good = PgVectorClient(tmp_path, url=pg_cluster.url(db, user=role, password="right-one"))
    assert good.list_collections() == []
    good.close()


def test_unreachable_server_names_the_host(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BackendUnavailable) as info:
        PgVectorClient(tmp_path, url=f"postgresql://rag:secret@127.0.0.1:{port}/rag")
    message = _one_line(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "database 'rag'" in message
    assert "start PostgreSQL" in message
    assert "secret" not in message


def test_missing_database_and_bad_url(pg_cluster: PgCluster, tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="has no database 'nothere': create it"):
        PgVectorClient(tmp_path, url=pg_cluster.url("nothere"))
    with pytest.raises(ConfigurationError, match="RAG_VECTORSTORE__PGVECTOR__URL"):
        PgVectorClient(tmp_path, url="")
    with pytest.raises(ConfigurationError, match="not a valid libpq URL"):
        PgVectorClient(tmp_path, url="host=x port")
    with pytest.raises(ConfigurationError, match="unknown pgvector options"):
        PgVectorClient(tmp_path, url=pg_cluster.url(), hostname="x")


def test_extension_created_when_the_user_may(pg_cluster: PgCluster, tmp_path: Path) -> None:
    db = pg_cluster.create_database(extension=False)
    client = PgVectorClient(tmp_path, url=pg_cluster.url(db))
    client.create_collection("fine", MODEL, DIM)
    client.close()
    with pg_cluster.admin(db) as conn:
        assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()


def test_extension_missing_and_not_creatable(pg_cluster: PgCluster, tmp_path: Path) -> None:
    role = pg_cluster.create_role()
    db = pg_cluster.create_database(owner=role, extension=False)
    with pytest.raises(ConfigurationError) as info:
        PgVectorClient(tmp_path, url=pg_cluster.url(db, user=role))
    message = _one_line(info.value)
    assert pg_cluster.socket_dir in message
    assert f"database '{db}'" in message
    assert "CREATE EXTENSION vector" in message
    assert "superuser" in message
    with pg_cluster.admin(db) as conn:  # nothing was left behind
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tableowner = %s", [role]
        ).fetchone()
    assert tables == (0,)


def test_registry_refuses_unknown_pgvector_options(tmp_path: Path) -> None:
    options: dict[str, Any] = {"url": "postgresql://u@/db?host=/nowhere", "shards": 2}
    with pytest.raises(ConfigurationError, match="shards"):
        create_client("pgvector", tmp_path, options)


def test_connections_killed_by_the_server_are_replaced(
    pg_client: PgVectorClient, pg_cluster: PgCluster
) -> None:
    """Connections killed by the server are replaced without a failed call."""
    store = pg_client.create_collection("kill", MODEL, DIM)
    rec, chunks = make_doc("d1", 2)
    store.replace_document(rec, chunks, rand_vectors(2))
    with pg_cluster.admin() as conn:  # end every other session, as a restart would
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
    assert store.count() == 2
    assert len(store.search(rand_vectors(1)[0], top_k=5)) == 2
