"""The search API over HTTP: modes, MMR and rerank parameters, score semantics."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app.settings import Settings
from tests.app.conftest import running_app
from tests.fakes import HashEmbedder
from tests.retrieval.conftest import DOCS


def test_search_modes_and_mmr_over_http(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with running_app(settings, HashEmbedder()) as client:
        files = [("files", (name, io.BytesIO(text.encode()))) for name, text in DOCS.items()]
        resp = client.post("/v1/collections/default/documents", files=files)
        assert resp.status_code == 201, resp.text
        url = "/v1/collections/default/search"

        def search(**body: object) -> dict:  # type: ignore[type-arg]
            resp = client.post(url, json={"query": "heappush heap queue", "top_k": 3, **body})
            assert resp.status_code == 200, resp.text
            return resp.json()  # type: ignore[no-any-return]

        default = search()
        assert default["mode"] == settings.retrieval.mode
        for mode in ("dense", "bm25", "hybrid"):
            got = search(mode=mode)
            assert got["mode"] == mode
            assert got["hits"][0]["filename"] == "heapq.txt"
        assert search(mode="bm25")["hits"][0]["score"] > 1.0  # a BM25 score, not a cosine
        assert search(mode="hybrid")["hits"][0]["score"] <= 2 / 61
        assert search(mode="bm25", filter={"source": "json.txt"})["hits"] == []
        diverse = search(mode="hybrid", mmr=True, mmr_lambda=0.5)
        assert diverse["hits"][0]["filename"] == "heapq.txt"
        assert len(diverse["hits"]) == 3

        bad = client.post(url, json={"query": "x", "mode": "sparse"})
        assert bad.status_code == 422
        bad = client.post(url, json={"query": "x", "mmr_lambda": 2})
        assert bad.status_code == 422
        no_reranker = client.post(url, json={"query": "x", "rerank": True})
        assert no_reranker.status_code in (400, 422)
        assert "reranker" in no_reranker.json()["error"]["message"]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_deleted_document_leaves_every_mode(tmp_path: Path, mode: str) -> None:
    with running_app(Settings(data_dir=tmp_path / "data"), HashEmbedder()) as client:
        files = [("files", ("venv.txt", io.BytesIO(DOCS["venv.txt"].encode())))]
        created = client.post("/v1/collections/default/documents", files=files)
        assert created.status_code == 201, created.text
        body = {"query": "virtual environments", "top_k": 5, "mode": mode}
        url = "/v1/collections/default/search"
        hits = client.post(url, json=body).json()["hits"]
        assert hits[0]["filename"] == "venv.txt"
        document_id = hits[0]["document_id"]
        assert client.delete(f"/v1/collections/default/documents/{document_id}").status_code == 204
        assert client.post(url, json=body).json()["hits"] == []
