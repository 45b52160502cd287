"""Answering over HTTP with a deterministic generator: query, streaming, chat, prompts."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.settings import LLMSettings, Settings
from tests.app.conftest import running_app
from tests.fakes import EchoGenerator, HashEmbedder

DOCS = [
    ("vault.txt", b"The vault code is 7421. It opens the north door of the archive."),
    ("garden.md", b"# Garden\n\nTomatoes need six hours of sun. Water them in the morning."),
]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with running_app(settings, HashEmbedder(), EchoGenerator()) as c:
        resp = c.post(
            "/v1/collections/default/documents",
            files=[("files", (n, io.BytesIO(d))) for n, d in DOCS],
        )
        assert resp.status_code == 201
        yield c


def sse_events(text: str) -> list[tuple[str, Any]]:
    events = []
    for frame in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines())
        events.append((lines.get("event", "message"), json.loads(lines["data"])))
    return events


def test_query_answers_with_citations_of_prompt_chunks(client: TestClient) -> None:
    resp = client.post(
        "/v1/collections/default/query", json={"question": "What is the vault code?", "top_k": 2}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "7421" in body["answer"]
    assert body["citations"][0]["filename"] == "vault.txt"
    assert body["citations"][0]["cited"] is True
    assert "7421" in body["citations"][0]["quote"]
    used = body["usage"]["chunks_used"]
    assert [c["chunk_id"] for c in body["citations"]] == used
    usage = body["usage"]
    assert usage["prompt_tokens"] + usage["reserve"] <= usage["window"]
    assert set(usage["tokens_by_part"]) >= {"system", "context", "question"}
    assert usage["completion_tokens"] > 0
    assert usage["estimated"] is True
    assert set(body["timings"]) == {"retrieval_ms", "evidence_ms", "generation_ms", "total_ms"}


def test_query_stream_sends_deltas_then_final_event(client: TestClient) -> None:
    resp = client.post(
        "/v1/collections/default/query",
        json={"question": "What is the vault code?", "top_k": 2, "stream": True},
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    deltas = [data["text"] for kind, data in events if kind == "delta"]
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done"
    assert len(deltas) > 1
    final = events[-1][1]
    assert "".join(deltas).strip() == final["answer"]
    assert final["citations"][0]["filename"] == "vault.txt"


def test_citations_never_name_chunks_outside_the_prompt(settings: Settings) -> None:
    small = EchoGenerator(context_window=260)
    with running_app(settings, HashEmbedder(), small) as c:
        text = " ".join(f"Sentence {i} about the vault code 7421." for i in range(60))
        c.post(
            "/v1/collections/default/documents",
            files=[("files", ("long.txt", io.BytesIO(text.encode())))],
        )
        body = c.post(
            "/v1/collections/default/query",
            json={"question": "vault code?", "top_k": 10, "llm": {"max_tokens": 16}},
        ).json()
        usage = body["usage"]
        assert usage["chunks_dropped"], "the small window forces chunks out"
        cited = {c["chunk_id"] for c in body["citations"]}
        assert cited == set(usage["chunks_used"])
        assert not cited & set(usage["chunks_dropped"])
        assert usage["prompt_tokens"] + 16 <= 260


def test_chain_of_thought_and_role_reach_the_prompt(client: TestClient) -> None:
    resp = client.post(
        "/v1/prompts/preview",
        json={
            "question": "What is the vault code?",
            "strategy": "chain_of_thought",
            "role": "a careful archivist",
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    text = "\n".join(m["content"] for m in body["messages"])
    assert "careful archivist" in text
    assert "final answer" in text.lower()
    assert body["template"] == "chain_of_thought"
    assert body["usage"]["chunks_used"]


def test_prompts_are_listed(client: TestClient) -> None:
    names = {p["name"] for p in client.get("/v1/prompts").json()["prompts"]}
    assert {"zero_shot", "one_shot", "few_shot", "chain_of_thought"} <= names


def test_fixed_parts_too_big_is_a_clear_422(settings: Settings) -> None:
    with running_app(settings, HashEmbedder(), EchoGenerator(context_window=300)) as c:
        resp = c.post(
            "/v1/collections/default/query",
            json={"question": "why " * 200, "llm": {"max_tokens": 100}},
        )
        assert resp.status_code == 422
        assert "window" in resp.json()["error"]["message"]


def test_question_limits(client: TestClient) -> None:
    too_long = client.post("/v1/collections/default/query", json={"question": "x" * 5000})
    assert too_long.status_code == 422
    assert "4000" in too_long.json()["error"]["message"]
    unknown = client.post(
        "/v1/collections/default/query", json={"question": "hi", "strategy": "nope"}
    )
    assert unknown.status_code in (404, 422)
    other_model = client.post(
        "/v1/collections/default/query", json={"question": "hi", "llm": {"model": "gpt-9"}}
    )
    assert other_model.status_code == 422
    assert "not loaded" in other_model.json()["error"]["message"]


def test_chat_completions_and_models(client: TestClient) -> None:
    models = client.get("/v1/models").json()
    assert "rag:default" in [m["id"] for m in models["data"]]
    resp = client.post(
        "/v1/chat/completions",
        json={
            "model": "rag:default",
            "messages": [
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi! Ask me about the archive."},
                {"role": "user", "content": "What is the vault code?"},
            ],
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert "7421" in body["choices"][0]["message"]["content"]
    assert body["sources"][0]["filename"] == "vault.txt"
    assert body["usage"]["total_tokens"] == (
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )


def test_chat_completions_stream_in_openai_chunks(client: TestClient) -> None:
    resp = client.post(
        "/v1/chat/completions",
        json={
            "model": "rag:default",
            "stream": True,
            "messages": [{"role": "user", "content": "What is the vault code?"}],
        },
    )
    frames = [f[len("data: ") :] for f in resp.text.strip().split("\n\n")]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert "7421" in text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["sources"][0]["filename"] == "vault.txt"


class BlockingGenerator(EchoGenerator):
    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def generate(self, messages: Any, params: Any) -> Any:
        self.entered.set()
        self.release.wait(30)
        return super().generate(messages, params)


def test_full_generation_queue_answers_503_with_retry_after(settings: Settings) -> None:
    # An empty collection: abstention is off so the question reaches the model queue.
    llm = LLMSettings(concurrency=1, queue_size=0, abstain_below=0.0)
    settings = settings.model_copy(update={"llm": llm})
    gen = BlockingGenerator()
    with running_app(settings, HashEmbedder(), gen) as c:
        results: list[int] = []
        first = threading.Thread(
            target=lambda: results.append(
                c.post("/v1/collections/default/query", json={"question": "q"}).status_code
            )
        )
        first.start()
        assert gen.entered.wait(30)
        busy = c.post("/v1/collections/default/query", json={"question": "q"})
        gen.release.set()
        first.join(30)
        assert busy.status_code == 503
        assert int(busy.headers["Retry-After"]) >= 1
        assert results == [200]
