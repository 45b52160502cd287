"""The server on the pgvector backend: start-up errors, keyword search, a PostgreSQL outage.

Real PostgreSQL 16 + pgvector (pgserver); the fast deterministic embedder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.services.container import Components
from app.settings import Settings
from tests.app.conftest import running_app
from tests.app.test_documents_api import upload
from tests.fakes import HashEmbedder
from tests.pg import PgCluster

pytestmark = pytest.mark.integration

TEXT = (
    b"# Lighthouses\n\nThe lighthouse keeper logs every passing ship in a leather-bound "
    b"ledger.\n\n# Bread\n\nSourdough needs a starter culture fed with flour and water.\n"
)


def pg_settings(data_dir: Path, url: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        vectorstore={"backend": "pgvector", "pgvector": {"url": url, "connect_timeout_s": 3}},
        llm={"load_at_startup": False},
    )


def search(client: TestClient, query: str, mode: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    resp = client.post(
        "/v1/collections/default/search", json={"query": query, "top_k": 3, "mode": mode}
    )
    return resp.status_code, resp.json()


@pytest.mark.parametrize("problem", ["wrong password", "no vector extension"])
def test_startup_fails_with_one_line_naming_the_host(
    pg_cluster: PgCluster,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    problem: str,
) -> None:
    if problem == "wrong password":
        role = pg_cluster.create_role(password="right")
        url = pg_cluster.url(pg_cluster.create_database(owner=role), role, "wrong")
        fix = "check the user name and password in RAG_VECTORSTORE__PGVECTOR__URL"
    else:
        role = pg_cluster.create_role()
        url = pg_cluster.url(pg_cluster.create_database(owner=role, extension=False), role)
        fix = "run CREATE EXTENSION vector;"
    app = create_app(pg_settings(tmp_path / "data", url), Components(embedder=HashEmbedder()))
    with caplog.at_level(logging.ERROR), TestClient(app) as client:
        assert app.state.loader.done.wait(60)
        ready = client.get("/readyz")
        listed = client.get("/v1/collections")
    assert ready.status_code == 503
    assert ready.json()["status"] == "failed"
    error = ready.json()["detail"]["error"]
    assert "\n" not in error
    assert pg_cluster.socket_dir in error
    assert fix in error
    assert listed.status_code == 503
    assert pg_cluster.socket_dir in listed.json()["error"]["message"]
    (record,) = [r for r in caplog.records if r.getMessage().startswith("start-up failed")]
    assert record.exc_info is None
    assert "\n" not in record.getMessage()
    assert fix in record.getMessage()


def test_keyword_and_hybrid_search_on_pgvector(pg_cluster: PgCluster, tmp_path: Path) -> None:
    url = pg_cluster.url(pg_cluster.create_database())
    with running_app(pg_settings(tmp_path / "data", url), HashEmbedder()) as client:
        upload(client, [("notes.md", TEXT)])
        for mode in ("bm25", "hybrid", "dense"):
            status, body = search(client, "sourdough starter culture", mode)
            assert status == 200, body
            assert "Sourdough" in body["hits"][0]["text"], (mode, body)
        upload(client, [("more.md", b"# Glaciers\n\nGlaciers carve U-shaped valleys.\n")])
        status, body = search(client, "glaciers valleys", "bm25")
        assert status == 200
        assert body["hits"][0]["filename"] == "more.md"


def test_two_servers_on_one_database_see_each_others_writes(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """Dense search through B finds an upload through A at once; keyword search after B's check."""
    url = pg_cluster.url(pg_cluster.create_database())
    with (
        running_app(pg_settings(tmp_path / "a", url), HashEmbedder()) as a,
        running_app(pg_settings(tmp_path / "b", url), HashEmbedder()) as b,
    ):
        status, body = search(b, "glaciers valleys", "bm25")
        assert (status, body["hits"]) == (200, [])
        upload(a, [("more.md", b"# Glaciers\n\nGlaciers carve U-shaped valleys.\n")])
        status, body = search(b, "glaciers valleys", "dense")
        assert (status, body["hits"][0]["filename"]) == (200, "more.md")
        deadline = time.monotonic() + 60  # a safety net: B checks every keyword_check_interval_s
        while not (hits := search(b, "glaciers valleys", "bm25")[1]["hits"]):
            assert time.monotonic() < deadline, "B's keyword search never saw A's upload"
            time.sleep(0.1)
        assert hits[0]["filename"] == "more.md"


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A server of this test's own, since the test stops it."""
    cluster = PgCluster()
    try:
        yield cluster
    finally:
        cluster.close()


def test_postgres_stopped_under_load_gives_503_then_recovers(
    own_cluster: PgCluster, tmp_path: Path
) -> None:
    database = own_cluster.create_database()
    settings = pg_settings(tmp_path / "data", own_cluster.url(database))
    with running_app(settings, HashEmbedder()) as client:
        upload(client, [("notes.md", TEXT)])
        assert search(client, "lighthouse keeper", "hybrid")[0] == 200
        own_cluster.stop()
        queries = ["lighthouse keeper", "sourdough", "ledger", "flour"] * 4
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda q: search(client, q, "hybrid"), queries))
        for status, body in answers:
            assert status == 503, body
            assert f"database '{database}'" in body["error"]["message"]
            assert body["error"]["type"] == "BackendUnavailable"
        listed = client.get("/v1/collections/default/documents")
        assert listed.status_code == 503
        own_cluster.start()
        for mode in ("dense", "bm25", "hybrid"):
            status, body = search(client, "lighthouse keeper", mode)
            assert status == 200, body
            assert "lighthouse" in body["hits"][0]["text"]
        assert client.get("/readyz").status_code == 200
        upload(client, [("after.md", b"# Comets\n\nComets grow tails near the sun.\n")])
        status, body = search(client, "comets tails", "hybrid")
        assert status == 200
        assert body["hits"][0]["filename"] == "after.md"
