"""Two real ragserver processes on one PostgreSQL database: what one writes, the other searches.

Each replica is a real server process on loopback (``tests.reliability.launcher``: uvicorn
over ``create_app``, the fast hash embedder) with a data directory of its own, so its keyword
index is its own. The keyword check interval is an hour: only the collection version kept in
PostgreSQL can tell B about A's writes, and B's first search after A's write has answered must
already see it (no polling needed: the version moves in the write's own transaction).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pg import PgCluster
from tests.reliability.server import running_server

pytestmark = pytest.mark.integration

GLACIERS = b"# Glaciers\n\nGlaciers carve U-shaped valleys with moraines.\n"
BREAD = b"# Bread\n\nSourdough needs a starter culture fed with flour and water.\n"


@pytest.fixture
def replicas(pg_cluster: PgCluster, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """Base URLs of replicas A and B, and B's data directory."""
    env = {
        "RAG_VECTORSTORE__BACKEND": "pgvector",
        "RAG_VECTORSTORE__PGVECTOR__URL": pg_cluster.url(pg_cluster.create_database()),
        "RAG_RETRIEVAL__KEYWORD_CHECK_INTERVAL_S": "3600",
        "RAG_LLM__LOAD_AT_STARTUP": "false",
    }
    with (
        running_server(tmp_path / "a", env) as a,
        running_server(tmp_path / "b", env) as b,
    ):
        yield a.url, b.url, b.data_dir


def upload(base: str, name: str, data: bytes, collection: str = "default") -> dict[str, Any]:
    resp = httpx.post(
        f"{base}/v1/collections/{collection}/documents",
        files=[("files", (name, data))],
        timeout=60,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def search(base: str, query: str, mode: str, collection: str = "default") -> httpx.Response:
    return httpx.post(
        f"{base}/v1/collections/{collection}/search",
        json={"query": query, "top_k": 3, "mode": mode},
        timeout=60,
    )


def sources(base: str, query: str, mode: str, collection: str = "default") -> list[str]:
    resp = search(base, query, mode, collection)
    assert resp.status_code == 200, resp.text
    return [hit["source"] for hit in resp.json()["hits"]]


def files_mentioning(folder: Path, word: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and word in p.read_bytes().lower()]


def test_keyword_search_through_b_sees_writes_and_deletes_through_a(
    replicas: tuple[str, str, Path],
) -> None:
    a, b, b_data = replicas
    upload(b, "bread.md", BREAD)  # B builds (and persists) a keyword index first
    assert sources(b, "glaciers moraines", "bm25") == []

    document = upload(a, "glaciers.md", GLACIERS)["files"][0]
    for mode in ("bm25", "hybrid"):
        assert sources(b, "glaciers moraines", mode)[0] == "glaciers.md", mode
    assert files_mentioning(b_data / "bm25", b"moraines")  # B's own index holds it now

    resp = httpx.delete(f"{a}/v1/collections/default/documents/{document['document_id']}")
    assert resp.status_code == 204, resp.text
    for mode in ("bm25", "hybrid"):
        assert "glaciers.md" not in sources(b, "glaciers moraines", mode), mode
    assert sources(b, "sourdough starter", "bm25") == ["bread.md"]
    # The text deleted through A is gone from B's index files too, older versions included.
    assert files_mentioning(b_data / "bm25", b"moraines") == []


def test_a_collection_deleted_and_recreated_through_a_is_served_by_b(
    replicas: tuple[str, str, Path],
) -> None:
    a, b, b_data = replicas
    assert httpx.post(f"{a}/v1/collections", json={"name": "notes"}).status_code == 201
    upload(a, "bread.md", BREAD, "notes")
    assert sources(b, "sourdough", "bm25", "notes") == ["bread.md"]  # B opens "notes"

    assert httpx.delete(f"{a}/v1/collections/notes").status_code == 204
    gone = search(b, "sourdough", "bm25", "notes")
    assert gone.status_code == 404, gone.text
    assert files_mentioning(b_data / "bm25", b"sourdough") == []

    assert httpx.post(f"{a}/v1/collections", json={"name": "notes"}).status_code == 201
    upload(a, "glaciers.md", GLACIERS, "notes")
    for mode in ("bm25", "hybrid", "dense"):
        assert sources(b, "glaciers moraines", mode, "notes")[0] == "glaciers.md", mode
    assert "bread.md" not in sources(b, "sourdough", "hybrid", "notes")
    listed = httpx.get(f"{b}/v1/collections/notes/documents")
    assert listed.status_code == 200, listed.text
    assert [d["source"] for d in listed.json()["documents"]] == ["glaciers.md"]
    upload(b, "bread.md", BREAD, "notes")  # and B writes into the new collection
    assert sources(a, "sourdough", "bm25", "notes") == ["bread.md"]
