"""A deleted document or collection leaves no copy of its text in the data directory.

The check reads every file's bytes under the data directory (vectors, SQLite and its WAL, the
keyword index versions, staged uploads, caches) for a word that only the deleted file held.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings, VectorStoreSettings
from tests.app.conftest import running_app
from tests.fakes import HashEmbedder

SECRET = "zqxjvortexpalimpsest"
KEPT = "Owls hunt at night using silent flight and keen hearing."


def files_holding(root: Path, word: str) -> list[str]:
    """Every file under ``root`` whose bytes contain ``word`` (UTF-8)."""
    needle = word.encode()
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    )


def upload(client: TestClient, collection: str, name: str, text: str) -> str:
    resp = client.post(
        f"/v1/collections/{collection}/documents",
        files=[("files", (name, io.BytesIO(text.encode())))],
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["files"][0]["document_id"])


def search(client: TestClient, collection: str, query: str, mode: str) -> list[str]:
    resp = client.post(
        f"/v1/collections/{collection}/search", json={"query": query, "mode": mode, "top_k": 5}
    )
    assert resp.status_code == 200, resp.text
    return [h["text"] for h in resp.json()["hits"]]


BACKENDS = [
    "faiss",
    "memory",
    # Postgres keeps the rows in its own data folder (dead tuples, WAL) until it vacuums:
    # here only ragserver's data directory (the keyword index) is checked for pgvector.
    pytest.param("pgvector", marks=pytest.mark.integration),
    # Embedded Chroma: the text lives beside Chroma (vectorstores/chroma_content.py).
    pytest.param("chroma", marks=pytest.mark.integration),
]


def backend_settings(settings: Settings, backend: str, request: pytest.FixtureRequest) -> Settings:
    """The test's settings on ``backend`` (pgvector: a fresh database of the session's server)."""
    store = settings.vectorstore.model_dump()
    store["backend"] = backend
    if backend == "pgvector":
        cluster = request.getfixturevalue("pg_cluster")
        store["pgvector"]["url"] = cluster.url(cluster.create_database())
    return settings.model_copy(update={"vectorstore": VectorStoreSettings(**store)})


@pytest.mark.parametrize("backend", BACKENDS)
def test_deleted_document_leaves_no_text_on_disk(
    settings: Settings, backend: str, request: pytest.FixtureRequest
) -> None:
    settings = backend_settings(settings, backend, request)
    with running_app(settings, HashEmbedder()) as client:
        upload(client, "default", "kept.txt", KEPT)
        doc = upload(client, "default", "secret.txt", f"The password is {SECRET} today.")
        assert any(SECRET in t for t in search(client, "default", SECRET, "bm25"))
        client.app.state.loader.wait().search.keywords.wait()  # type: ignore[attr-defined]
        assert files_holding(settings.data_dir, SECRET), "the check must see the word first"

        assert client.delete(f"/v1/collections/default/documents/{doc}").status_code == 204
        assert files_holding(settings.data_dir, SECRET) == []
        assert not any(SECRET in t for t in search(client, "default", SECRET, "bm25"))
        assert search(client, "default", "owls night", "bm25")  # the other document stays


@pytest.mark.parametrize("backend", BACKENDS)
def test_deleted_collection_leaves_no_text_on_disk(
    settings: Settings, backend: str, request: pytest.FixtureRequest
) -> None:
    settings = backend_settings(settings, backend, request)
    with running_app(settings, HashEmbedder()) as client:
        assert client.post("/v1/collections", json={"name": "notes"}).status_code == 201
        upload(client, "notes", "secret.md", f"# Notes\n\nThe code word is {SECRET}.")
        assert search(client, "notes", SECRET, "bm25")
        client.app.state.loader.wait().search.keywords.wait()  # type: ignore[attr-defined]
        assert files_holding(settings.data_dir, SECRET)

        assert client.delete("/v1/collections/notes").status_code == 204
        assert files_holding(settings.data_dir, SECRET) == []
