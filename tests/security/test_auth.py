"""API keys over HTTP: 401 without one, scopes per collection, read-only keys, open health."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.app.conftest import running_app
from tests.fakes import HashEmbedder
from tests.security.conftest import (
    ADMIN,
    ALL_RO,
    DOCS_RO,
    DOCS_RW,
    KEYS,
    bearer,
    secured_app,
    upload,
    with_security,
)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """Keys configured; collections docs (one document) and secret (one document) exist."""
    with secured_app(settings) as c:
        for name in ("docs", "secret"):
            assert (
                c.post("/v1/collections", json={"name": name}, headers=bearer(ADMIN)).status_code
                == 201
            )
            resp = upload(
                c,
                [(f"{name}.txt", f"The {name} ledger lists ships.".encode())],
                name,
                bearer(ADMIN),
            )
            assert resp.status_code == 201, resp.text
        yield c


def test_no_key_is_401_with_www_authenticate(client: TestClient) -> None:
    for method, path in [
        ("GET", "/v1/collections"),
        ("GET", "/v1/collections/docs/documents"),
        ("POST", "/v1/collections/docs/search"),
        ("GET", "/v1/no-such-route"),
    ]:
        resp = client.request(method, path)
        assert resp.status_code == 401, (path, resp.text)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        error = resp.json()["error"]
        assert error["type"] == "Unauthorized"
        assert "Authorization: Bearer" in error["message"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong-key",
        f"Bearer {ADMIN}x",
        f"Basic {ADMIN}",
        ADMIN,
        "Bearer ",
        f"bearer  {ADMIN[:-1]}",
    ],
)
def test_wrong_key_is_401(client: TestClient, header: str) -> None:
    resp = client.get("/v1/collections", headers={"Authorization": header})
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.json()["error"]["type"] == "Unauthorized"


def test_scheme_is_case_insensitive(client: TestClient) -> None:
    assert (
        client.get("/v1/collections", headers={"Authorization": f"bearer {ADMIN}"}).status_code
        == 200
    )


def test_health_stays_open(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/openapi.json").status_code == 200


@pytest.mark.parametrize("key", [DOCS_RO, DOCS_RW])
def test_out_of_scope_is_the_same_403_whether_the_collection_exists(
    client: TestClient, key: str
) -> None:
    for method, suffix, body in [
        ("GET", "", None),
        ("GET", "/documents", None),
        ("GET", "/documents/secret-txt", None),
        ("POST", "/search", {"query": "ledger"}),
        ("POST", "/query", {"question": "which ledger?"}),
        ("DELETE", "", None),
    ]:
        answers = [
            client.request(
                method, f"/v1/collections/{name}{suffix}", json=body, headers=bearer(key)
            )
            for name in ("secret", "does-not-exist")
        ]
        assert [a.status_code for a in answers] == [403, 403], (method, suffix)
        assert answers[0].json() == answers[1].json()
        assert answers[0].json()["error"]["type"] == "Forbidden"
        assert "secret" not in answers[0].text
    # Upload to an out-of-scope collection: refused before the body is looked at.
    existing = upload(client, [("x.txt", b"text")], "secret", bearer(key))
    missing = upload(client, [("x.txt", b"text")], "does-not-exist", bearer(key))
    assert existing.status_code == missing.status_code == 403
    assert existing.json() == missing.json()


def test_scoped_key_works_in_scope(client: TestClient) -> None:
    resp = client.get("/v1/collections/docs/documents", headers=bearer(DOCS_RO))
    assert resp.status_code == 200
    assert [d["filename"] for d in resp.json()["documents"]] == ["docs.txt"]
    hits = client.post(
        "/v1/collections/docs/search", json={"query": "ledger"}, headers=bearer(DOCS_RO)
    )
    assert hits.status_code == 200
    assert hits.json()["hits"][0]["filename"] == "docs.txt"
    # In scope but missing: an honest 404.
    assert client.get("/v1/collections/notes", headers=bearer(DOCS_RW)).status_code == 404


def test_listing_shows_only_collections_in_scope(client: TestClient) -> None:
    def names(key: str) -> list[str]:
        resp = client.get("/v1/collections", headers=bearer(key))
        assert resp.status_code == 200
        return [c["name"] for c in resp.json()["collections"]]

    assert names(ADMIN) == ["default", "docs", "secret"]
    assert names(ALL_RO) == ["default", "docs", "secret"]
    assert names(DOCS_RO) == ["docs"]
    assert names(DOCS_RW) == ["docs"]


def test_read_only_key_cannot_upload_delete_or_create(client: TestClient) -> None:
    before = client.get("/v1/collections/docs/documents", headers=bearer(ADMIN)).json()
    for key in (DOCS_RO, ALL_RO):
        attempts = [
            upload(client, [("new.txt", b"New text about ships.")], "docs", bearer(key)),
            client.delete("/v1/collections/docs/documents/docs-txt", headers=bearer(key)),
            client.delete("/v1/collections/docs", headers=bearer(key)),
            client.post("/v1/collections", json={"name": "fresh"}, headers=bearer(key)),
        ]
        for resp in attempts:
            assert resp.status_code == 403, resp.text
            assert "read-only" in resp.json()["error"]["message"]
    after = client.get("/v1/collections/docs/documents", headers=bearer(ADMIN)).json()
    assert after == before
    assert client.get("/v1/collections/fresh", headers=bearer(ADMIN)).status_code == 404


def test_scoped_read_write_key_creates_only_in_scope(client: TestClient) -> None:
    ok = client.post("/v1/collections", json={"name": "notes"}, headers=bearer(DOCS_RW))
    assert ok.status_code == 201
    denied = client.post("/v1/collections", json={"name": "other"}, headers=bearer(DOCS_RW))
    assert denied.status_code == 403
    assert client.get("/v1/collections/other", headers=bearer(ADMIN)).status_code == 404
    resp = upload(client, [("n.txt", b"Notes about kites.")], "notes", bearer(DOCS_RW))
    assert resp.status_code == 201
    deleted = client.delete("/v1/collections/docs/documents/docs-txt", headers=bearer(DOCS_RW))
    assert deleted.status_code in (204, 404)


def test_keys_file_with_comments(settings: Settings, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(
        "# ragserver keys\n\nfile-admin-0123456789   # the admin\nfile-ro-0123456789:docs:ro\n"
    )
    with running_app(with_security(settings, api_keys_file=keys_file), HashEmbedder()) as client:
        assert client.get("/v1/collections").status_code == 401
        assert (
            client.get("/v1/collections", headers=bearer("file-admin-0123456789")).status_code
            == 200
        )
        resp = client.get("/v1/collections", headers=bearer("file-ro-0123456789"))
        assert resp.status_code == 200
        assert resp.json()["collections"] == []
        assert client.get("/v1/collections", headers=bearer("# the admin")).status_code == 401


def test_metrics_public_by_default_and_keyed_when_configured(settings: Settings) -> None:
    with secured_app(settings) as client:
        assert client.get("/metrics").status_code == 200
    with secured_app(settings, metrics_public=False) as client:
        resp = client.get("/metrics")
        assert resp.status_code == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.get("/metrics", headers=bearer(DOCS_RO)).status_code == 200
        assert client.get("/healthz").status_code == 200


def test_no_keys_means_open(settings: Settings) -> None:
    with running_app(settings, HashEmbedder()) as open_client:
        assert open_client.get("/v1/collections").status_code == 200
        assert open_client.get("/v1/collections", headers=bearer("anything")).status_code == 200


def test_keys_are_never_logged(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with secured_app(settings) as client:
        client.get("/v1/collections", headers=bearer(ADMIN))
        client.get("/v1/collections", headers=bearer(ADMIN + "-wrong"))
        client.get("/v1/collections/secret", headers=bearer(DOCS_RO))
        client.get("/v1/nope", headers=bearer(DOCS_RW))
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "ragserver.access" in {r.name for r in caplog.records}
    for key in KEYS:
        assert key.split(":")[0] not in text


def test_chat_completions_is_scoped_by_the_model_name(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    if "/v1/chat/completions" not in paths:
        pytest.skip("POST /v1/chat/completions is not registered")
    answers = [
        client.post(
            "/v1/chat/completions",
            json={"model": f"rag:{name}", "messages": [{"role": "user", "content": "hi?"}]},
            headers=bearer(DOCS_RO),
        )
        for name in ("secret", "does-not-exist")
    ]
    assert [a.status_code for a in answers] == [403, 403]
    assert answers[0].json() == answers[1].json()


def test_body_named_collections_and_jobs_respect_scope(client: TestClient) -> None:
    """Routes naming the collection outside the path: models, preview, chat, jobs."""
    models = client.get("/v1/models", headers=bearer(DOCS_RO)).json()
    assert [m["id"] for m in models["data"]] == ["rag:docs"]

    for body_collection in ("secret", "does-not-exist"):
        preview = client.post(
            "/v1/prompts/preview",
            json={"question": "ships?", "collection": body_collection},
            headers=bearer(DOCS_RO),
        )
        chat = client.post(
            "/v1/chat/completions",
            json={
                "model": f"rag:{body_collection}",
                "messages": [{"role": "user", "content": "x"}],
            },
            headers=bearer(DOCS_RO),
        )
        assert preview.status_code == chat.status_code == 403

    job = client.post(
        "/v1/collections/secret/documents?wait=false",
        files=[("files", ("late.txt", b"Late ledger entry."))],
        headers=bearer(ADMIN),
    ).json()
    assert client.get(f"/v1/jobs/{job['id']}", headers=bearer(ADMIN)).status_code == 200
    hidden = client.get(f"/v1/jobs/{job['id']}", headers=bearer(DOCS_RO))
    assert hidden.status_code == 404
