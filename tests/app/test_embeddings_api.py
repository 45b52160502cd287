"""POST /v1/embeddings with the deterministic embedder: shape, usage, refusals, keys, limits."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.app.conftest import running_app
from tests.fakes import HashEmbedder
from tests.security.conftest import ADMIN, DOCS_RO, bearer, secured_app

MODEL = "hash-64"


def test_a_list_of_texts_gets_unit_vectors_in_order_and_token_usage(client: TestClient) -> None:
    texts = ["the heap queue", "json encoder and decoder", "bisect a sorted list"]
    resp = client.post("/v1/embeddings", json={"model": MODEL, "input": texts})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "list"
    assert body["model"] == MODEL
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    expected = HashEmbedder().embed(texts)
    got = np.array([item["embedding"] for item in body["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # HashEmbedder counts words plus 2 special tokens.
    assert body["usage"] == {"prompt_tokens": 3 + 2 + 4 + 2 + 4 + 2, "total_tokens": 17}


def test_a_single_string_and_base64_encoding(client: TestClient) -> None:
    resp = client.post(
        "/v1/embeddings",
        json={"model": MODEL, "input": "the heap queue", "encoding_format": "base64"},
    )
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert len(data) == 1
    vector = np.frombuffer(base64.b64decode(data[0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vector, HashEmbedder().embed_query("the heap queue"), atol=1e-7)


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"model": MODEL, "input": [[101, 2023]]}, 422, "token ids"),
        ({"model": MODEL, "input": [101, 2023]}, 422, "token ids"),
        ({"model": MODEL, "input": []}, 422, "empty list"),
        ({"model": MODEL, "input": ["ok", "  "]}, 422, "input[1] is empty"),
        ({"model": MODEL, "input": ["ok", {"a": 1}]}, 422, "input[1] is a dict"),
        ({"model": "text-embedding-3-small", "input": "x"}, 422, "send model 'hash-64'"),
        ({"model": MODEL, "input": "x", "dimensions": 32}, 422, "leave dimensions out"),
        ({"model": MODEL, "input": ["x"] * 2049}, 422, "at most 2048"),
        ({"model": MODEL}, 422, "input"),
    ],
)
def test_bad_input_is_a_clear_422(
    client: TestClient, body: dict[str, object], status: int, needle: str
) -> None:
    resp = client.post("/v1/embeddings", json=body)
    assert resp.status_code == status, resp.text
    assert needle in resp.json()["error"]["message"]


def test_a_text_longer_than_the_model_reads_is_refused_unless_truncate(
    client: TestClient,
) -> None:
    long_text = "word " * 300  # 302 tokens for HashEmbedder; it reads 256
    resp = client.post("/v1/embeddings", json={"model": MODEL, "input": ["short", long_text]})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert "input[1] is 302 tokens" in error["message"]
    assert error["detail"] == {"index": 1, "tokens": 302, "max_tokens": 256}
    resp = client.post(
        "/v1/embeddings", json={"model": MODEL, "input": ["short", long_text], "truncate": True}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["prompt_tokens"] == 3 + 256


def test_the_full_model_name_and_its_last_part_are_both_accepted(settings: Settings) -> None:
    embedder = HashEmbedder()
    embedder.model_name = "acme/hash-64"
    with running_app(settings, embedder) as c:
        for name in ("acme/hash-64", "hash-64"):
            resp = c.post("/v1/embeddings", json={"model": name, "input": "x"})
            assert resp.status_code == 200, resp.text
            assert resp.json()["model"] == "acme/hash-64"


def test_keys_are_needed_and_a_read_only_key_may_embed(settings: Settings) -> None:
    body = {"model": MODEL, "input": "x"}
    with secured_app(settings) as c:
        resp = c.post("/v1/embeddings", json=body)
        assert resp.status_code == 401
        assert resp.json()["error"]["type"] == "Unauthorized"
        assert c.post("/v1/embeddings", json=body, headers=bearer("wrong")).status_code == 401
        for key in (ADMIN, DOCS_RO):
            assert c.post("/v1/embeddings", json=body, headers=bearer(key)).status_code == 200


def test_the_rate_limit_applies(settings: Settings) -> None:
    body = {"model": MODEL, "input": "x"}
    with secured_app(settings, rate_limit_per_minute=1, rate_limit_burst=2) as c:
        statuses = [
            c.post("/v1/embeddings", json=body, headers=bearer(ADMIN)).status_code for _ in range(3)
        ]
    assert statuses == [200, 200, 429]


def test_the_body_limit_applies(settings: Settings) -> None:
    with secured_app(settings, max_upload_mb=0.001) as c:
        resp = c.post(
            "/v1/embeddings",
            json={"model": MODEL, "input": ["word " * 100] * 5},
            headers=bearer(ADMIN),
        )
    assert resp.status_code == 413
    assert resp.json()["error"]["type"] == "PayloadTooLarge"
