"""End to end with real parts: the `openai` client, the bundled models, real servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.live import LiveServer

pytestmark = pytest.mark.integration

FACT = (
    "Orchard Street Library opening hours. The library opens at 9 am and closes at 6 pm. "
    "The secret code of the archive vault is 7421. Only the head librarian knows it."
)
QUESTION = "What is the secret code of the archive vault?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A ragserver with the default local model, holding one uploaded document."""
    data = tmp_path_factory.mktemp("live") / "data"
    srv = LiveServer(data, {"RAG_SECURITY__MAX_QUESTION_CHARS": "100000"}).start()
    try:
        resp = httpx.post(
            f"{srv.url}/v1/collections/default/documents",
            files={"files": ("library.txt", FACT.encode())},
            timeout=120,
        )
        assert resp.status_code == 201, resp.text
        yield srv
    finally:
        srv.stop()


def test_openai_client_gets_a_grounded_answer(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=300)
    assert "rag:default" in [m.id for m in client.models.list().data]
    reply = client.chat.completions.create(
        model="rag:default",
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=40,
    )
    answer = reply.choices[0].message.content or ""
    assert answer.strip()
    sources = reply.model_extra["sources"]  # type: ignore[index]
    assert sources[0]["filename"] == "library.txt"
    assert "7421" in sources[0]["quote"]
    assert "7421" in answer, f"answer not grounded in the document: {answer!r}"
    assert reply.usage is not None
    assert reply.usage.completion_tokens > 0


def test_openai_client_streams_a_grounded_answer(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=300)
    stream = client.chat.completions.create(
        model="rag:default",
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=40,
        stream=True,
    )
    pieces, last = [], None
    for chunk in stream:
        last = chunk
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    answer = "".join(pieces)
    assert len(pieces) > 1, "the answer arrived in several deltas"
    assert "7421" in answer, answer
    assert last is not None
    assert last.model_extra["sources"][0]["filename"] == "library.txt"


def test_default_local_model_answers_query_with_citations(server: LiveServer) -> None:
    resp = httpx.post(
        f"{server.url}/v1/collections/default/query",
        json={"question": QUESTION, "llm": {"max_tokens": 40}},
        timeout=300,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == "SmolLM2-135M-Instruct"
    assert body["citations"][0]["filename"] == "library.txt"
    assert body["usage"]["estimated"] is False, "counted with the model's own tokenizer"
    assert body["usage"]["prompt_tokens"] + 40 <= body["usage"]["window"]
    assert "7421" in body["answer"]


def test_openai_backend_against_a_real_openai_compatible_server(
    server: LiveServer, tmp_path: Path
) -> None:
    """A second ragserver answers through the first one's chat endpoint with the openai client."""
    front = LiveServer(
        tmp_path / "front",
        {
            "RAG_LLM__BACKEND": "openai",
            "RAG_LLM__BASE_URL": f"{server.url}/v1",
            "RAG_LLM__MODEL": "rag:default",
            "RAG_LLM__TIMEOUT_S": "300",
        },
    ).start()
    try:
        httpx.post(
            f"{front.url}/v1/collections/default/documents",
            files={"files": ("library.txt", FACT.encode())},
            timeout=120,
        ).raise_for_status()
        resp = httpx.post(
            f"{front.url}/v1/collections/default/query",
            json={"question": QUESTION, "llm": {"max_tokens": 40}},
            timeout=600,
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["model"] == "rag:default"
        assert body["answer"].strip()
        assert body["citations"][0]["filename"] == "library.txt"
        assert body["usage"]["estimated"] is True, "a non-OpenAI model name is estimated"
    finally:
        front.stop()


def test_provider_down_is_a_502(tmp_path: Path) -> None:
    dead = LiveServer(tmp_path / "dead")  # never started: its port refuses connections
    front = LiveServer(
        tmp_path / "front",
        {
            "RAG_LLM__BACKEND": "openai",
            "RAG_LLM__BASE_URL": f"{dead.url}/v1",
            "RAG_LLM__MODEL": "rag:default",
            "RAG_LLM__MAX_RETRIES": "0",
            # An empty collection would abstain without calling the provider.
            "RAG_LLM__ABSTAIN_BELOW": "0",
        },
    ).start()
    try:
        resp = httpx.post(
            f"{front.url}/v1/collections/default/query", json={"question": "hi"}, timeout=120
        )
        assert resp.status_code == 502
        assert dead.url in resp.json()["error"]["message"]
    finally:
        front.stop()
