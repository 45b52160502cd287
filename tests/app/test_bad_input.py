"""Bad input gets a clear 4xx and leaves the stored data untouched."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient

from app.settings import IngestSettings, Settings
from tests.app.conftest import running_app
from tests.fakes import HashEmbedder

GOOD = [
    ("rivers.txt", b"The Danube flows through ten countries before reaching the Black Sea."),
    ("birds.md", b"# Birds\n\nSwifts can stay airborne for ten months without landing."),
]

BAD_UPLOADS = {
    "empty file": ("empty.txt", b"", 422, "empty"),
    "binary named .txt": ("data.txt", bytes(range(256)) * 8, None, "text"),
    "corrupt pdf": ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage", 422, "pdf"),
    "over the limit": ("big.txt", b"word " * 300_000, 413, "limit"),
    "path in name": ("../../etc/passwd.txt", b"root:x:0:0", 422, "name"),
    "non-utf8 text": ("latin.txt", "café crème brûlée über alles".encode("latin-1"), 422, "utf-8"),
}


def snapshot(client: TestClient) -> tuple[object, object, object]:
    info = client.get("/v1/collections/default").json()
    docs = client.get("/v1/collections/default/documents").json()
    hits = client.post(
        "/v1/collections/default/search", json={"query": "rivers and birds", "top_k": 5}
    ).json()
    return info, docs, hits


@pytest.fixture
def loaded_client(settings: Settings):  # type: ignore[no-untyped-def]
    settings = settings.model_copy(update={"ingest": IngestSettings(max_file_mb=1.0)})
    with running_app(settings, HashEmbedder()) as client:
        resp = client.post(
            "/v1/collections/default/documents",
            files=[("files", (n, io.BytesIO(d))) for n, d in GOOD],
        )
        assert resp.status_code == 201
        yield client


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_upload_is_a_clear_4xx_and_changes_nothing(
    loaded_client: TestClient, case: str
) -> None:
    name, data, status, word = BAD_UPLOADS[case]
    before = snapshot(loaded_client)
    resp = loaded_client.post(
        "/v1/collections/default/documents", files=[("files", (name, io.BytesIO(data)))]
    )
    assert 400 <= resp.status_code < 500, resp.text
    if status is not None:
        assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert word.lower() in err["message"].lower(), err
    assert set(err) == {"type", "message", "detail"}
    assert loaded_client.get("/readyz").status_code == 200
    assert snapshot(loaded_client) == before


def test_binary_file_is_refused_with_415_or_422(loaded_client: TestClient) -> None:
    resp = loaded_client.post(
        "/v1/collections/default/documents",
        files=[("files", ("tool.exe", io.BytesIO(b"MZ\x90\x00" + bytes(500))))],
    )
    assert resp.status_code == 415
    assert "tool.exe" in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    ("metadata", "word"),
    [("{not json", "valid json"), ('["a list"]', "object"), ('{"nested": {"a": 1}}', "strings")],
)
def test_invalid_metadata_is_422(loaded_client: TestClient, metadata: str, word: str) -> None:
    before = snapshot(loaded_client)
    resp = loaded_client.post(
        "/v1/collections/default/documents",
        files=[("files", ("ok.txt", io.BytesIO(b"Perfectly fine text.")))],
        data={"metadata": metadata},
    )
    assert resp.status_code == 422
    assert word in resp.json()["error"]["message"].lower()
    assert snapshot(loaded_client) == before


def test_unknown_collection_is_404(loaded_client: TestClient) -> None:
    resp = loaded_client.post(
        "/v1/collections/nope-not-here/documents",
        files=[("files", ("ok.txt", io.BytesIO(b"text")))],
    )
    assert resp.status_code == 404
    assert "nope-not-here" in resp.json()["error"]["message"]
    resp = loaded_client.post("/v1/collections/nope-not-here/search", json={"query": "x"})
    assert resp.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"query": ""},
        {"query": "x", "top_k": 0},
        {"query": "x", "top_k": 10_000},
        {"query": "x", "filter": {"page": {"$regex": "a"}}},
        {"query": "x", "bogus": 1},
    ],
)
def test_invalid_search_is_422(loaded_client: TestClient, body: dict) -> None:  # type: ignore[type-arg]
    resp = loaded_client.post("/v1/collections/default/search", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["message"]


def test_mixed_batch_keeps_good_files_and_answers_207(loaded_client: TestClient) -> None:
    resp = loaded_client.post(
        "/v1/collections/default/documents",
        files=[
            ("files", ("fine.txt", io.BytesIO(b"Owls hunt at night using silent flight."))),
            ("files", ("empty.txt", io.BytesIO(b""))),
        ],
    )
    assert resp.status_code == 207, resp.text
    assert resp.headers["X-Files-Failed"] == "1"
    statuses = {f["filename"]: f["status"] for f in resp.json()["files"]}
    assert statuses == {"fine.txt": "created", "empty.txt": "failed"}
    failed = next(f for f in resp.json()["files"] if f["status"] == "failed")
    assert failed["error"]["type"] == "EmptyDocument"
    names = [
        d["filename"]
        for d in loaded_client.get("/v1/collections/default/documents").json()["documents"]
    ]
    assert "empty.txt" not in names
    assert "fine.txt" in names
