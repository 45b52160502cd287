"""Error messages say what to fix (#23, point 7): one test per message a new user met."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient

SEARCH = "/v1/collections/default/search"


def message(resp: object) -> str:
    body = resp.json()  # type: ignore[attr-defined]
    return str(body["error"]["message"])


def test_json_sent_form_encoded_names_the_content_type(client: TestClient) -> None:
    resp = client.post(SEARCH, data={"query": "owls"})
    assert resp.status_code == 422
    text = message(resp)
    assert "Content-Type: application/json" in text
    assert "application/x-www-form-urlencoded" in text
    assert "dictionary" not in text


def test_trailing_comma_gives_line_and_column(client: TestClient) -> None:
    body = b'{\n  "query": "owls",\n  "top_k": 3,\n}'
    resp = client.post(SEARCH, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 422
    text = message(resp)
    assert "not valid JSON" in text
    assert "line 4, column 1" in text
    assert "trailing comma" in text
    assert "invalid request: 3" not in text  # no character position shown like a field


def test_malformed_json_points_at_the_spot(client: TestClient) -> None:
    body = b'{"query": "owls" "top_k": 3}'
    resp = client.post(SEARCH, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 422
    text = message(resp)
    assert "line 1, column 18" in text
    assert "trailing comma" not in text


def test_bad_collection_name_is_explained_in_words(client: TestClient) -> None:
    resp = client.post("/v1/collections", json={"name": "my docs"})
    assert resp.status_code == 422
    text = message(resp)
    assert "'my docs'" in text
    assert "3 to 63 letters, digits, '_' or '-'" in text
    assert "[A-Za-z0-9]" not in text


def test_method_not_allowed_names_the_allowed_methods(client: TestClient) -> None:
    resp = client.get(SEARCH)
    assert resp.status_code == 405
    assert message(resp) == f"GET is not allowed on {SEARCH}; it takes POST"
    resp = client.put("/v1/collections")
    assert resp.status_code == 405
    assert message(resp) == "PUT is not allowed on /v1/collections; it takes GET or POST"
    assert resp.headers["allow"] == "GET, POST"


def test_chat_with_an_openai_model_name_hints_rag_collection(client: TestClient) -> None:
    assert client.post("/v1/collections", json={"name": "manuals"}).status_code == 201
    resp = client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert resp.status_code == 404
    text = message(resp)
    assert "'rag:NAME'" in text
    assert "rag:default, rag:manuals" in text


def test_markdown_with_only_a_heading_says_so(client: TestClient) -> None:
    resp = client.post(
        "/v1/collections/default/documents",
        files=[("files", ("title.md", io.BytesIO(b"# Release notes\n")))],
    )
    assert resp.status_code == 422
    text = message(resp)
    assert "no text beyond its headings" in text
    assert "'Release notes'" in text
    assert "scanned" not in text
