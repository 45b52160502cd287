"""pgvector's bulk path: a large write into a small table builds the HNSW index once.

Real PostgreSQL 16 + pgvector (pgserver); a low ``bulk_min_rows`` keeps the data small.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from tests.pg import PgCluster, unique
from tests.vectorstores.contract import DIM, MODEL, make_doc, rand_vectors
from vectorstores.pgvector_store import PgVectorClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database(pg_cluster: PgCluster) -> str:
    return pg_cluster.create_database()


@pytest.fixture
def client(pg_cluster: PgCluster, database: str, tmp_path: Path) -> Iterator[PgVectorClient]:
    client = PgVectorClient(
        tmp_path,
        url=pg_cluster.url(database),
        db_schema=unique("t"),
        bulk_min_rows=50,
        hnsw_m=8,
        hnsw_ef_construction=32,
    )
    yield client
    client.close()


def hnsw_index(conn: psycopg.Connection[Any], table: str) -> tuple[int, list[str]]:
    """The HNSW index on ``table``: its oid (new after a rebuild) and its options."""
    rows = conn.execute(
        "SELECT c.oid, c.reloptions FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = %s::regclass AND a.amname = 'hnsw'",
        [table],
    ).fetchall()
    assert len(rows) == 1, rows
    return int(rows[0][0]), list(rows[0][1])


def test_a_large_first_write_builds_the_index_after_the_copy(
    client: PgVectorClient, pg_cluster: PgCluster, database: str
) -> None:
    store = client.create_collection("docs", MODEL, DIM)
    table = f'"{client._schema}".chunks_{store._id}'
    with pg_cluster.admin(database) as conn:
        created, options = hnsw_index(conn, table)

        record, chunks = make_doc("big", 200)
        vectors = rand_vectors(200)
        store.replace_document(record, chunks, vectors)
        bulk, bulk_options = hnsw_index(conn, table)
        assert bulk != created  # dropped and built again, with the same parameters
        assert bulk_options == options == ["m=8", "ef_construction=32"]

        record, chunks = make_doc("small", 60)  # 60 rows into a table of 200: row by row
        store.replace_document(record, chunks, rand_vectors(60, seed=1))
        assert hnsw_index(conn, table)[0] == bulk
        record, chunks = make_doc("tiny", 3)
        store.replace_document(record, chunks, rand_vectors(3, seed=2))
        assert hnsw_index(conn, table)[0] == bulk

    assert store.count() == 263
    assert store.get_document("big") is not None
    # The rebuilt index answers like an exact search on these 263 rows.
    stored = {c.id: v for c, v in zip(store.get_chunks("big"), vectors, strict=True)}
    for chunk_id, vector in list(stored.items())[:10]:
        hits = store.search(vector, top_k=1)
        assert hits[0].chunk.id == chunk_id
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_bulk_upsert_replaces_by_id_and_keeps_other_rows(client: PgVectorClient) -> None:
    store = client.create_collection("docs", MODEL, DIM)
    record, chunks = make_doc("a", 80)
    store.replace_document(record, chunks, rand_vectors(80))
    replaced = rand_vectors(80, seed=3)
    store.upsert(chunks, replaced)  # 80 rows into a table of 80: the bulk path again
    assert store.count() == 80
    hit = store.search(replaced[5], top_k=1)[0]
    assert hit.chunk.id == chunks[5].id
    assert hit.score == pytest.approx(1.0, abs=1e-5)
    assert np.isclose(store.search(replaced[7], top_k=1)[0].score, 1.0, atol=1e-5)
