"""One vocabulary across the API: relative sources over HTTP, the names hits show are the
names filters take, warnings instead of silent empty lists, the preview route by collection."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient

DOCS = "/v1/collections/default/documents"
SEARCH = "/v1/collections/default/search"


def upload_files(client: TestClient, files: list[tuple[str, bytes]], **form: object) -> object:
    return client.post(
        DOCS, files=[("files", (name, io.BytesIO(data))) for name, data in files], data=form
    )


@pytest.fixture
def readmes(client: TestClient) -> TestClient:
    """Two README.md files from different folders, sent with their relative paths."""
    resp = upload_files(
        client,
        [
            ("a/README.md", b"# Alpha\n\nThe alpha service stores invoices."),
            ("b/README.md", b"# Beta\n\nThe beta service sends reminders."),
        ],
    )
    assert resp.status_code == 201, resp.text  # type: ignore[attr-defined]
    return client


def test_same_named_files_in_different_folders_stay_apart(readmes: TestClient) -> None:
    """Reproduces #23.2: the second README replaced the first under the same id."""
    docs = readmes.get(DOCS).json()["documents"]
    assert sorted(d["source"] for d in docs) == ["a/README.md", "b/README.md"]
    assert len({d["id"] for d in docs}) == 2


def test_source_field_names_each_file(client: TestClient) -> None:
    resp = upload_files(
        client,
        [("README.md", b"First readme about kites."), ("README.md", b"Second about owls.")],
        source=["docs/one/README.md", "docs/two/README.md"],
    )
    assert resp.status_code == 201, resp.text  # type: ignore[attr-defined]
    names = [f["filename"] for f in resp.json()["files"]]  # type: ignore[attr-defined]
    assert names == ["docs/one/README.md", "docs/two/README.md"]
    resp = upload_files(client, [("x.md", b"text")], source=["a.md", "b.md"])
    assert resp.status_code == 422  # type: ignore[attr-defined]
    assert "one 'source' per file" in resp.json()["error"]["message"]  # type: ignore[attr-defined]


UNSAFE_SOURCES = {
    "../secrets.md": "'..'",
    "a/../../b.md": "'..'",
    "/etc/passwd.md": "absolute",
    "C:/x/y.md": "absolute",
    "a\\b.md": "'\\'",
    "a//b.md": "empty",
    "a/\x07bell.md": "control characters",
}


def test_unsafe_sources_are_refused(client: TestClient) -> None:
    for name, why in UNSAFE_SOURCES.items():
        # As a source field, and as the multipart file name (where httpx percent-encodes
        # control characters, so they cannot arrive).
        for form in ({"source": [name]}, {}) if "\x07" not in name else ({"source": [name]},):
            files = [(name if not form else "ok.md", b"Some text.")]
            resp = upload_files(client, files, **form)
            assert resp.status_code == 422, (name, resp.text)  # type: ignore[attr-defined]
            assert why in resp.json()["error"]["message"], name  # type: ignore[attr-defined]
    assert client.get(DOCS).json()["total"] == 0


def test_hits_show_source_and_filters_take_it_or_its_alias(readmes: TestClient) -> None:
    for key in ("source", "filename"):
        resp = readmes.post(
            SEARCH, json={"query": "service", "filter": {key: "b/README.md"}, "mode": "dense"}
        )
        body = resp.json()
        assert [h["source"] for h in body["hits"]] == ["b/README.md"], key
        assert body["hits"][0]["filename"] == "b/README.md"  # deprecated alias, same value
        assert body["warnings"] == []
    listed = readmes.get(DOCS, params={"filter": '{"filename": "a/README.md"}'}).json()
    assert [d["source"] for d in listed["documents"]] == ["a/README.md"]


def test_unknown_filter_key_is_a_warning_not_a_silent_empty_list(readmes: TestClient) -> None:
    body = readmes.post(SEARCH, json={"query": "service", "filter": {"team": "ops"}}).json()
    assert body["hits"] == []
    assert len(body["warnings"]) == 1
    assert "'team' is on no chunk" in body["warnings"][0]
    assert "source" in body["warnings"][0]
    known = readmes.post(SEARCH, json={"query": "service", "filter": {"source": "nope.md"}})
    assert known.json()["hits"] == []
    assert known.json()["warnings"] == []  # a known key that matched nothing is no surprise


def test_score_type_and_what_the_threshold_compared(readmes: TestClient) -> None:
    dense = readmes.post(SEARCH, json={"query": "invoices", "mode": "dense"}).json()
    assert dense["score_type"] == "cosine"
    assert dense["warnings"] == []
    hybrid = readmes.post(
        SEARCH, json={"query": "invoices", "mode": "hybrid", "score_threshold": 0.5}
    ).json()
    assert hybrid["score_type"] == "rrf"
    assert any("cosine similarity of the dense candidates" in w for w in hybrid["warnings"])
    bm25 = readmes.post(SEARCH, json={"query": "invoices", "mode": "bm25"}).json()
    assert bm25["score_type"] == "bm25"


def test_preview_takes_its_collection_in_the_path(readmes: TestClient) -> None:
    assert readmes.post("/v1/collections", json={"name": "other"}).status_code == 201
    query = {"question": "What does the alpha service store?"}
    by_path = readmes.post("/v1/collections/default/prompts/preview", json=query)
    assert by_path.status_code == 200, by_path.text
    sources = {c["source"] for c in by_path.json()["citations"]}
    assert "a/README.md" in sources
    legacy = readmes.post("/v1/prompts/preview", json={**query, "collection": "default"})
    assert legacy.json()["messages"] == by_path.json()["messages"]
    empty = readmes.post("/v1/collections/other/prompts/preview", json=query)
    assert empty.json()["citations"] == []
    missing = readmes.post("/v1/collections/nope/prompts/preview", json=query)
    assert missing.status_code == 404
    paths = readmes.app.openapi()["paths"]  # type: ignore[attr-defined]
    assert paths["/v1/prompts/preview"]["post"]["deprecated"] is True
