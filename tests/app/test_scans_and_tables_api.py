"""Scans and tables over HTTP: uploaded, then found by search; bad images get a clear 4xx."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.app.conftest import running_app
from tests.ingest.documents import (
    image_bytes,
    sentence_image,
    table_docx,
    table_html,
    table_pdf,
)
from tests.ingest.files import encrypt_pdf


def post(client: TestClient, name: str, data: bytes, **form: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    resp = client.post(
        "/v1/collections/default/documents",
        files=[("files", (name, io.BytesIO(data)))],
        data=form,
    )
    return resp.status_code, resp.json()


def search(client: TestClient, query: str, **extra: object) -> list[dict]:  # type: ignore[type-arg]
    resp = client.post("/v1/collections/default/search", json={"query": query, **extra})
    assert resp.status_code == 200, resp.text
    return resp.json()["hits"]  # type: ignore[no-any-return]


def test_a_scanned_pdf_and_a_png_are_found_by_their_words(client: TestClient) -> None:
    image = sentence_image()
    for name, data in [
        ("scan.pdf", image_bytes(image, "PDF", resolution=150)),
        ("note.png", image_bytes(image, "PNG")),
        ("other.txt", b"Sourdough bread needs a starter culture fed with flour and water."),
    ]:
        status, body = post(client, name, data)
        assert status == 201, body
        assert body["files"][0]["status"] == "created"
        assert body["files"][0]["warnings"] == []
    hits = search(client, "lighthouse keeper feeds orange cats", top_k=3)
    assert {h["filename"] for h in hits[:2]} == {"scan.pdf", "note.png"}
    for hit in hits[:2]:
        assert "lighthouse keeper feeds seven orange cats" in hit["text"].lower()
        chunks = client.get(f"/v1/collections/default/documents/{hit['document_id']}/chunks")
        [chunk] = chunks.json()["chunks"]
        assert chunk["metadata"]["ocr"] is True
        assert 40 <= chunk["metadata"]["ocr_confidence"] <= 100


def test_an_unreadable_page_is_a_warning_in_the_upload_result(client: TestClient) -> None:
    from PIL import Image

    page = sentence_image().convert("RGB")  # type: ignore[attr-defined]
    blank = Image.new("RGB", page.size, "white")
    data = image_bytes(page, "PDF", save_all=True, append_images=[blank])
    status, body = post(client, "two.pdf", data)
    assert status == 201, body
    [warning] = body["files"][0]["warnings"]
    assert warning.startswith("two.pdf: page 2 could not be read: OCR found no text")


@pytest.mark.parametrize(
    ("name", "data", "status", "message"),
    [
        ("broken.png", image_bytes(sentence_image(), "PNG")[:300], 422, "damaged"),
        ("secret.png", bytes(b ^ 0x5A for b in image_bytes(sentence_image(), "PNG")), 422,
         "not a PNG image"),
        ("locked.pdf", encrypt_pdf(image_bytes(sentence_image(), "PDF"), "pw"), 422,
         "encrypted PDF"),
    ],
)  # fmt: skip
def test_a_corrupt_or_encrypted_image_gets_a_clear_4xx(
    client: TestClient, name: str, data: bytes, status: int, message: str
) -> None:
    code, body = post(client, name, data)
    assert code == status, body
    assert body["error"]["message"].startswith(f"{name}: ")
    assert message in body["error"]["message"]
    listed = client.get("/v1/collections/default/documents").json()
    assert listed["total"] == 0  # nothing stored


def test_image_files_are_refused_when_ocr_is_off(settings: Settings) -> None:
    from tests.fakes import HashEmbedder

    off = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"ocr": False})})
    with running_app(off, HashEmbedder()) as client:
        code, body = post(client, "note.png", image_bytes(sentence_image(), "PNG"))
    assert code == 415, body
    assert "RAG_INGEST__OCR=true" in body["error"]["message"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "make"),
    [("mountains.docx", table_docx), ("mountains.html", table_html), ("mountains.pdf", table_pdf)],
)
def test_a_question_about_one_row_finds_the_header_and_that_row(
    settings: Settings,
    real_embedder,  # type: ignore[no-untyped-def]
    name: str,
    make: object,
) -> None:
    with running_app(settings, real_embedder) as client:
        # A small chunk size, so the dozen rows span several chunks.
        status, body = post(client, name, make(), chunk_size="48")  # type: ignore[operator]
        assert status == 201, body
        assert body["files"][0]["chunks"] >= 4
        hits = search(client, "When was Aconcagua first climbed?", top_k=1, mode="dense")
    text = hits[0]["text"]
    assert text.startswith("| Mountain | Country | Height in metres | First ascent |\n")
    assert "| Aconcagua | Argentina | 6961 | 1897 |" in text.split("\n")
