"""A capable model rewrites follow-ups: ragserver's openai backend against a loopback server.

The server (``tests/llms/openai_compat_server.py``, uvicorn on 127.0.0.1, reached by the
official ``openai`` client inside ragserver) wraps a scripted model: asked with the rewrite
prompt, it replies with the query the test chose and keeps what it was sent; asked to
answer, it answers as the echo generator does. So the test sees the whole path: the rewrite
prompt carries the earlier turn, the model's reply is the query searched and reported, and a
reply that is no query falls back to the rules.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from prompts.followup import REWRITE_SYSTEM
from tests.app.conftest import running_app
from tests.app.test_conversations_api import (
    FIRST,
    FOLLOW_UP,
    ask,
    start,
    upload_docs,
    with_conversations,
)
from tests.fakes import EchoGenerator, HashEmbedder
from tests.llms.openai_compat_server import LoopbackServer, create_compat_app

STANDALONE = "How do I delete a temporary scratch folder and everything inside it?"


class ScriptedModel(EchoGenerator):
    """Rewrites with ``reply`` when asked to rewrite; answers like the echo generator."""

    def __init__(self) -> None:
        super().__init__()
        self.model_name = "scripted-capable-model"
        self.reply = STANDALONE
        self.rewrite_prompts: list[list[dict[str, str]]] = []

    def generate(self, messages: Sequence[Any], params: Any) -> Any:
        if messages and messages[0]["content"] == REWRITE_SYSTEM:
            from llms.base import Completion

            self.rewrite_prompts.append([dict(m) for m in messages])
            return Completion(text=self.reply, completion_tokens=12, prompt_tokens=50)
        return super().generate(messages, params)


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def client(settings: Settings, model: ScriptedModel) -> Iterator[TestClient]:
    with LoopbackServer(create_compat_app(model)) as server:
        llm = settings.llm.model_copy(
            update={
                "backend": "openai",
                "base_url": f"{server.url}/v1",
                "model": model.model_name,
                "abstain_below": 0.0,
                "max_retries": 0,
            }
        )
        configured = with_conversations(settings.model_copy(update={"llm": llm}), rewrite="auto")
        with running_app(configured, HashEmbedder()) as c:
            upload_docs(c)
            yield c


def test_auto_lets_a_capable_model_rewrite(client: TestClient, model: ScriptedModel) -> None:
    conversation = start(client)
    first = ask(client, conversation, FIRST)
    assert first["rewrite"] == "none"
    assert model.rewrite_prompts == []  # no earlier turn: nothing to rewrite

    body = ask(client, conversation, FOLLOW_UP)
    assert (body["rewrite"], body["rewritten_query"]) == ("model", STANDALONE)
    assert body["answer_mode"] == "generative"
    assert body["citations"][0]["source"] == "removal.txt"
    (prompt,) = model.rewrite_prompts
    asked = prompt[-1]["content"]
    assert f"User: {FIRST}" in asked
    assert first["answer"][:40] in asked
    assert asked.rstrip().endswith("Standalone search query:")
    assert FOLLOW_UP in asked
    turn = client.get(f"/v1/conversations/{conversation}").json()["turns"][1]
    assert (turn["rewrite"], turn["rewritten_query"]) == ("model", STANDALONE)


def test_a_reply_that_is_no_query_falls_back_to_the_rules(
    client: TestClient, model: ScriptedModel
) -> None:
    conversation = start(client)
    ask(client, conversation, FIRST)
    model.reply = "I cannot help with that."  # none of the question's words: not a rewrite
    body = ask(client, conversation, FOLLOW_UP)
    assert body["rewrite"] == "rules"
    assert "scratch" in body["rewritten_query"]
    assert len(model.rewrite_prompts) == 1


def test_the_chat_endpoint_uses_the_model_rewrite(client: TestClient, model: ScriptedModel) -> None:
    messages = [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": "Call make_scratch_dir()."},
        {"role": "user", "content": FOLLOW_UP},
    ]
    body = client.post(
        "/v1/chat/completions", json={"model": "rag:default", "messages": messages}
    ).json()
    assert (body["rewrite"], body["rewritten_query"]) == ("model", STANDALONE)
    assert "Assistant: Call make_scratch_dir()." in model.rewrite_prompts[0][-1]["content"]


def test_an_extractive_answer_calls_no_model_for_the_rewrite(
    client: TestClient, model: ScriptedModel
) -> None:
    conversation = start(client)
    ask(client, conversation, FIRST, answer_mode="extractive")
    body = ask(client, conversation, FOLLOW_UP, answer_mode="extractive")
    assert body["rewrite"] == "rules"
    assert model.rewrite_prompts == []
    assert model.calls == []
