"""The documents API over HTTP: upload, idempotency, replace, delete, jobs, search."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from fpdf import FPDF

from app.settings import Settings
from tests.app.conftest import running_app
from tests.fakes import HashEmbedder

DATA = Path(__file__).resolve().parents[1] / "data"


def make_pdf(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def upload(
    client: TestClient, files: list[tuple[str, bytes]], collection: str = "default", **params: str
) -> dict:  # type: ignore[type-arg]
    resp = client.post(
        f"/v1/collections/{collection}/documents",
        files=[("files", (name, io.BytesIO(data))) for name, data in files],
        params=params,
    )
    assert resp.status_code in (201, 202), resp.text
    return resp.json()  # type: ignore[no-any-return]


def search(client: TestClient, query: str, top_k: int = 5, **extra: object) -> list[dict]:  # type: ignore[type-arg]
    resp = client.post(
        "/v1/collections/default/search", json={"query": query, "top_k": top_k, **extra}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["hits"]  # type: ignore[no-any-return]


@pytest.mark.integration
def test_real_html_and_pdf_are_found_by_search(settings: Settings, real_embedder) -> None:  # type: ignore[no-untyped-def]
    heapq_page = (DATA / "html" / "heapq.html").read_bytes()
    pdf = make_pdf(
        [
            "The lighthouse keeper logs every passing ship in a leather-bound ledger.",
            "Sourdough bread needs a starter culture that is fed flour and water daily.",
            "Glaciers carve U-shaped valleys as they slowly flow downhill over centuries.",
        ]
    )
    with running_app(settings, real_embedder) as client:
        body = upload(client, [("heapq.html", heapq_page), ("notes.pdf", pdf)])
        assert [f["status"] for f in body["files"]] == ["created", "created"]
        assert all(f["chunks"] > 0 for f in body["files"])

        hits = search(client, "priority queue implemented with a binary heap", top_k=3)
        assert hits[0]["filename"] == "heapq.html"
        assert hits[0]["heading_path"], "HTML chunks carry their heading path"

        hits = search(client, "how to keep a sourdough starter alive", top_k=1)
        assert hits[0]["filename"] == "notes.pdf"
        assert hits[0]["page"] == 2
        assert "starter culture" in hits[0]["text"]


def test_same_file_again_is_unchanged_and_changed_file_replaces(client: TestClient) -> None:
    first = b"Alpha bravo charlie. The parrot sings at dawn."
    assert upload(client, [("a.txt", first)])["files"][0]["status"] == "created"
    again = upload(client, [("a.txt", first)])["files"][0]
    assert again["status"] == "unchanged"

    doc_id = again["document_id"]
    before = client.get(f"/v1/collections/default/documents/{doc_id}").json()
    changed = upload(client, [("a.txt", b"Zebra yankee xray. The walrus naps at noon.")])
    assert changed["files"][0]["status"] == "replaced"
    assert changed["files"][0]["document_id"] == doc_id
    after = client.get(f"/v1/collections/default/documents/{doc_id}").json()
    assert after["content_hash"] != before["content_hash"]
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] >= before["updated_at"]

    texts = [h["text"] for h in search(client, "parrot sings at dawn", top_k=10)]
    assert not any("parrot" in t for t in texts), "the old version's text is gone"
    assert any("walrus" in t for t in texts)


def test_delete_removes_document_from_search_and_listing(client: TestClient) -> None:
    upload(client, [("keep.md", b"# Keep\n\nThe heron fishes in the shallow river.")])
    doc = upload(client, [("gone.md", b"# Gone\n\nThe lynx hunts in the snowy forest.")])
    doc_id = doc["files"][0]["document_id"]
    chunks = client.get(f"/v1/collections/default/documents/{doc_id}/chunks").json()["chunks"]
    assert chunks
    assert chunks[0]["heading_path"] == "Gone"

    assert client.delete(f"/v1/collections/default/documents/{doc_id}").status_code == 204
    listed = client.get("/v1/collections/default/documents").json()
    assert [d["filename"] for d in listed["documents"]] == ["keep.md"]
    assert listed["total"] == 1
    hits = search(client, "lynx hunts in the snowy forest", top_k=10)
    assert all(h["document_id"] != doc_id for h in hits)
    assert client.get(f"/v1/collections/default/documents/{doc_id}").status_code == 404
    assert client.delete(f"/v1/collections/default/documents/{doc_id}").status_code == 404
    info = client.get("/v1/collections/default").json()
    assert info["documents"] == 1
    assert info["chunks"] == len(
        client.get(
            f"/v1/collections/default/documents/{listed['documents'][0]['id']}/chunks"
        ).json()["chunks"]
    )


def test_metadata_is_stored_and_filters_listing_and_search(client: TestClient) -> None:
    upload_meta = client.post(
        "/v1/collections/default/documents",
        files=[("files", ("hr.txt", io.BytesIO(b"Holiday policy: twenty days a year.")))],
        data={"metadata": '{"team": "hr", "year": 2024}'},
    )
    assert upload_meta.status_code == 201, upload_meta.text
    upload(client, [("eng.txt", b"Deploy policy: deploy on Tuesdays only.")])
    listed = client.get(
        "/v1/collections/default/documents", params={"filter": '{"team": "hr"}'}
    ).json()
    assert [d["filename"] for d in listed["documents"]] == ["hr.txt"]
    assert listed["documents"][0]["metadata"] == {"team": "hr", "year": 2024}
    hits = search(client, "policy", top_k=5, filter={"year": {"$gte": 2020}})
    assert {h["filename"] for h in hits} == {"hr.txt"}


def test_pagination_of_documents(client: TestClient) -> None:
    upload(
        client,
        [(f"doc{i}.txt", f"Document number {i} about topic {i}.".encode()) for i in range(5)],
    )
    page1 = client.get("/v1/collections/default/documents", params={"limit": 2}).json()
    page3 = client.get("/v1/collections/default/documents", params={"limit": 2, "offset": 4}).json()
    assert page1["total"] == 5
    assert [d["filename"] for d in page1["documents"]] == ["doc0.txt", "doc1.txt"]
    assert [d["filename"] for d in page3["documents"]] == ["doc4.txt"]


class SlowEmbedder(HashEmbedder):
    """Deterministic and slow enough that a job's progress can be watched."""

    def embed(self, texts):  # type: ignore[no-untyped-def]
        time.sleep(0.5)
        return super().embed(texts)


def test_background_job_reports_progress_and_completes(settings: Settings) -> None:
    # Files are embedded in groups of about 512 chunks: with ~300 chunks a file, the job
    # stores files two by two, so progress part-way through is visible.
    words = " ".join(f"kite{j}" for j in range(9000))
    files = [(f"part{i}.txt", f"Part {i}. {words}".encode()) for i in range(6)]
    with running_app(settings, SlowEmbedder()) as client:
        resp = client.post(
            "/v1/collections/default/documents",
            files=[("files", (name, io.BytesIO(data))) for name, data in files],
            data={"chunk_size": "32", "chunk_overlap": "0"},
            params={"wait": "false"},
        )
        assert resp.status_code == 202, resp.text
        job = resp.json()
        assert job["state"] in ("queued", "running")
        seen: list[tuple[str, int, int]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = client.get(f"/v1/jobs/{job['id']}").json()
            seen.append((state["state"], state["files_done"], state["chunks_embedded"]))
            if state["state"] in ("succeeded", "failed"):
                break
            time.sleep(0.02)
        assert state["state"] == "succeeded"
        assert state["files_done"] == state["files_total"] == 6
        assert [f["status"] for f in state["files"]] == ["created"] * 6
        assert state["chunks_embedded"] == sum(f["chunks"] for f in state["files"])
        partial = [s for s in seen if s[0] == "running" and 0 < s[1] < 6]
        assert partial, f"progress was never visible mid-job: {seen}"
        assert client.get("/v1/jobs/nope").status_code == 404


def test_collections_lifecycle(client: TestClient) -> None:
    names = [c["name"] for c in client.get("/v1/collections").json()["collections"]]
    assert names == ["default"]
    created = client.post("/v1/collections", json={"name": "team-docs"})
    assert created.status_code == 201
    assert created.json()["dimension"] == HashEmbedder().dimension
    assert client.post("/v1/collections", json={"name": "team-docs"}).status_code == 409
    upload(client, [("x.txt", b"Only in team docs: the octopus paints.")], collection="team-docs")
    assert client.get("/v1/collections/team-docs").json()["documents"] == 1
    default_hits = search(client, "octopus paints", top_k=5)
    assert default_hits == []
    assert client.delete("/v1/collections/team-docs").status_code == 204
    assert client.get("/v1/collections/team-docs").status_code == 404
    assert client.delete("/v1/collections/default").status_code == 409


def test_readiness_and_health(settings: Settings) -> None:
    with running_app(settings, HashEmbedder()) as client:
        assert client.get("/healthz").json() == {"status": "ok", "detail": {}}
        assert client.get("/readyz").status_code == 200


def test_search_scores_are_ordered(client: TestClient) -> None:
    upload(client, [(f"s{i}.txt", f"apple banana {'cherry ' * i}".encode()) for i in range(4)])
    hits = search(client, "apple banana cherry", top_k=4)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert np.all(np.array(scores) <= 1.0001)
