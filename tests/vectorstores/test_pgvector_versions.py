"""pgvector as seen by several replicas: the collection version, recreated collections.

Two ``PgVectorClient`` objects on one database stand for two ragserver replicas (each keeps
the store objects it opened). Real PostgreSQL 16 + pgvector (pgserver).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from core.errors import CollectionNotFound
from tests.pg import PgCluster, unique
from tests.vectorstores.contract import DIM, MODEL, make_doc, rand_vectors
from vectorstores.pgvector_db import SCHEMA_VERSION
from vectorstores.pgvector_store import PgVectorClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database(pg_cluster: PgCluster) -> str:
    return pg_cluster.create_database()


@pytest.fixture
def replicas(
    pg_cluster: PgCluster, database: str, tmp_path: Path
) -> Iterator[tuple[PgVectorClient, PgVectorClient]]:
    schema = unique("t")
    a = PgVectorClient(tmp_path, url=pg_cluster.url(database), db_schema=schema)
    b = PgVectorClient(tmp_path, url=pg_cluster.url(database), db_schema=schema)
    yield a, b
    a.close()
    b.close()


def test_every_write_moves_the_version_every_replica_reads(
    replicas: tuple[PgVectorClient, PgVectorClient],
) -> None:
    a, b = replicas
    store_a = a.create_collection("docs", MODEL, DIM)
    store_b = b.get_collection("docs")
    seen = [store_b.version()]
    assert store_a.version() == seen[0]

    record, chunks = make_doc("d1", 3)
    writes = [
        lambda: store_a.replace_document(record, chunks, rand_vectors(3)),
        lambda: store_a.upsert(chunks[:1], rand_vectors(1, seed=1)),
        lambda: store_a.delete([chunks[1].id]),
        lambda: store_a.delete_document("d1"),
    ]
    for write in writes:
        write()
        seen.append(store_b.version())
        assert seen[-1] == store_a.version()
    assert len(set(seen)) == len(seen), seen

    # Reads, and writes that change nothing, leave it alone.
    store_b.search(rand_vectors(1)[0], top_k=3)
    store_b.list_documents()
    assert not store_a.delete_document("missing")
    store_a.delete(["missing-chunk"])
    assert store_b.version() == seen[-1]


def test_a_collection_recreated_by_another_replica_is_followed(
    replicas: tuple[PgVectorClient, PgVectorClient],
) -> None:
    """B keeps the store it opened; A deletes and recreates the collection: B serves the new one."""
    a, b = replicas
    old = a.create_collection("docs", MODEL, DIM)
    record, chunks = make_doc("old", 2)
    old.replace_document(record, chunks, rand_vectors(2))
    store_b = b.get_collection("docs")
    before = store_b.version()
    assert store_b.count() == 2

    assert a.delete_collection("docs")
    with pytest.raises(CollectionNotFound):
        store_b.count()
    with pytest.raises(CollectionNotFound):
        store_b.list_documents()
    with pytest.raises(CollectionNotFound):
        store_b.version()

    new = a.create_collection("docs", MODEL, DIM)
    record, chunks = make_doc("new", 3)
    new.replace_document(record, chunks, rand_vectors(3, seed=5))
    assert store_b.version() not in (before, None)
    assert store_b.version() == new.version()
    assert [r.id for r in store_b.list_documents()] == ["new"]
    assert store_b.count() == 3
    assert {h.chunk.document_id for h in store_b.search(rand_vectors(1)[0], top_k=5)} == {"new"}

    # B writes into the recreated collection too, and A sees it.
    record, chunks = make_doc("from-b", 1)
    store_b.replace_document(record, chunks, rand_vectors(1, seed=9))
    assert new.get_document("from-b") is not None


def test_an_empty_recreated_collection_is_followed_by_document_reads(
    replicas: tuple[PgVectorClient, PgVectorClient],
) -> None:
    a, b = replicas
    a.create_collection("docs", MODEL, DIM)
    store_b = b.get_collection("docs")
    a.delete_collection("docs")
    a.create_collection("docs", MODEL, DIM)
    assert store_b.list_documents() == []
    assert store_b.count_documents() == 0
    assert store_b.get_document("x") is None


def test_a_version_1_schema_is_migrated(
    pg_cluster: PgCluster, database: str, tmp_path: Path
) -> None:
    schema = unique("t")
    url = pg_cluster.url(database)
    client = PgVectorClient(tmp_path, url=url, db_schema=schema)
    client.create_collection("docs", MODEL, DIM)
    client.close()
    with pg_cluster.admin(database) as conn:  # what ragserver with schema version 1 made
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP COLUMN version").format(
                sql.Identifier(schema, "collections")
            )
        )
        conn.execute(
            sql.SQL("UPDATE {} SET value = '1' WHERE key = 'schema_version'").format(
                sql.Identifier(schema, "meta")
            )
        )
    client = PgVectorClient(tmp_path, url=url, db_schema=schema)
    try:
        store = client.get_collection("docs")
        first = store.version()
        record, chunks = make_doc("d", 2)
        store.replace_document(record, chunks, rand_vectors(2))
        assert store.version() != first
    finally:
        client.close()
    with pg_cluster.admin(database) as conn:
        row = conn.execute(
            sql.SQL("SELECT value FROM {} WHERE key = 'schema_version'").format(
                sql.Identifier(schema, "meta")
            )
        ).fetchone()
    assert row == (str(SCHEMA_VERSION),)
