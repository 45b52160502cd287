"""answer_mode, evidence and abstention over HTTP (fake embedder, echo generator)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.services.reader import NOT_IN_DOCUMENTS
from app.settings import Settings
from tests.app.conftest import running_app
from tests.app.test_answers_api import sse_events
from tests.fakes import EchoGenerator, HashEmbedder

DOCS = [
    ("vault.txt", b"The vault code is 7421. It opens the north door of the archive."),
    ("garden.md", b"# Garden\n\nTomatoes need six hours of sun. Water them in the morning."),
]
QUESTION = {"question": "What is the vault code?", "top_k": 2}


def open_client(settings: Settings, generator: EchoGenerator, **llm: Any) -> Iterator[TestClient]:
    settings = settings.model_copy(update={"llm": settings.llm.model_copy(update=llm)})
    with running_app(settings, HashEmbedder(), generator) as c:
        resp = c.post(
            "/v1/collections/default/documents",
            files=[("files", (n, io.BytesIO(d))) for n, d in DOCS],
        )
        assert resp.status_code == 201
        yield c


@pytest.fixture
def generator() -> EchoGenerator:
    return EchoGenerator()


@pytest.fixture
def client(settings: Settings, generator: EchoGenerator) -> Iterator[TestClient]:
    yield from open_client(settings, generator, abstain_below=0.0)


def check_evidence(body: dict[str, Any]) -> None:
    quotes = {c["number"]: c["quote"] for c in body["citations"]}
    assert body["evidence"]
    for e in body["evidence"]:
        assert quotes[e["citation"]][e["start"] : e["end"]] == e["text"]


def test_extractive_answers_from_evidence_without_the_model(
    client: TestClient, generator: EchoGenerator
) -> None:
    resp = client.post(
        "/v1/collections/default/query", json={**QUESTION, "answer_mode": "extractive"}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["answer_mode"] == "extractive"
    assert body["abstained"] is False
    assert generator.calls == []
    check_evidence(body)
    for e in body["evidence"]:
        assert f"{' '.join(e['text'].split())} [{e['citation']}]" in body["answer"]
    assert "7421" in body["answer"]
    assert any(c["cited"] for c in body["citations"])
    assert body["usage"]["completion_tokens"] > 0
    assert body["timings"]["generation_ms"] == 0.0


def test_generative_calls_the_model_and_still_returns_evidence(
    client: TestClient, generator: EchoGenerator
) -> None:
    resp = client.post(
        "/v1/collections/default/query", json={**QUESTION, "answer_mode": "generative"}
    )
    body = resp.json()
    assert body["answer_mode"] == "generative"
    assert len(generator.calls) == 1
    assert body["answer"].endswith("[1]")
    check_evidence(body)


def test_auto_is_generative_for_a_model_other_than_the_bundled_one(
    client: TestClient, generator: EchoGenerator
) -> None:
    body = client.post("/v1/collections/default/query", json=QUESTION).json()
    assert body["answer_mode"] == "generative"
    assert len(generator.calls) == 1


def test_the_setting_gives_the_default_mode(settings: Settings, generator: EchoGenerator) -> None:
    for client in open_client(settings, generator, answer_mode="extractive", abstain_below=0.0):
        body = client.post("/v1/collections/default/query", json=QUESTION).json()
        assert body["answer_mode"] == "extractive"
        assert generator.calls == []
        body = client.post(
            "/v1/collections/default/query", json={**QUESTION, "answer_mode": "generative"}
        ).json()
        assert body["answer_mode"] == "generative"


def test_an_unknown_mode_is_refused_with_the_choices(client: TestClient) -> None:
    resp = client.post("/v1/collections/default/query", json={**QUESTION, "answer_mode": "fast"})
    assert resp.status_code == 422
    assert "extractive" in resp.text


def test_stream_final_event_carries_evidence_and_mode(client: TestClient) -> None:
    resp = client.post(
        "/v1/collections/default/query",
        json={**QUESTION, "answer_mode": "extractive", "stream": True},
    )
    events = sse_events(resp.text)
    kinds = [kind for kind, _ in events]
    final = events[-1][1]
    assert kinds == ["delta"] * len(final["evidence"]) + ["done"]
    assert "".join(data["text"] for kind, data in events if kind == "delta") == final["answer"]
    assert final["answer_mode"] == "extractive"
    check_evidence(final)


def test_abstains_without_the_model_when_evidence_is_weak(
    settings: Settings, generator: EchoGenerator
) -> None:
    for client in open_client(settings, generator, abstain_below=1.0):
        body = client.post(
            "/v1/collections/default/query", json={**QUESTION, "answer_mode": "generative"}
        ).json()
        assert body["abstained"] is True
        assert body["answer"].startswith(NOT_IN_DOCUMENTS)
        assert generator.calls == []
        assert body["confidence"] < 1.0
        check_evidence(body)


def test_chat_completion_reports_mode_and_evidence(
    client: TestClient, generator: EchoGenerator
) -> None:
    payload = {
        "model": "rag:default",
        "messages": [{"role": "user", "content": QUESTION["question"]}],
        "answer_mode": "extractive",
    }
    body = client.post("/v1/chat/completions", json=payload).json()
    assert body["answer_mode"] == "extractive"
    assert generator.calls == []
    assert "7421" in body["choices"][0]["message"]["content"]
    quotes = {s["number"]: s["quote"] for s in body["sources"]}
    for e in body["evidence"]:
        assert quotes[e["citation"]][e["start"] : e["end"]] == e["text"]
    resp = client.post("/v1/chat/completions", json={**payload, "stream": True})
    frames = [
        json.loads(line[len("data: ") :])
        for line in resp.text.splitlines()
        if line.startswith("data: {")
    ]
    assert frames[-1]["answer_mode"] == "extractive"
    assert frames[-1]["evidence"] == body["evidence"]
