"""Conversations over HTTP: create, ask follow-ups, turns kept, rewrite reported, delete.

A fake word-count embedder and the echo generator; the rewrite is the deterministic one
(``RAG_CONVERSATIONS__REWRITE=rules``) except where a test says otherwise. The pgvector
variant (a real PostgreSQL from ``pgserver``) is in ``test_conversations_pg.py``; the
rewrite by a capable model through a real OpenAI-compatible server in
``test_conversations_model.py``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.app.conftest import running_app
from tests.app.test_answers_api import sse_events
from tests.app.test_delete_leaves_no_text import files_holding
from tests.fakes import EchoGenerator, HashEmbedder

DOCS = [
    (
        "scratch.txt",
        b"Scratch folders. Call make_scratch_dir() to create a temporary scratch folder "
        b"for your files; it lives under the system's temporary directory.",
    ),
    (
        "removal.txt",
        b"Removing things. Call wipe_tree(path) to delete a temporary scratch folder and "
        b"everything inside it, files and subfolders alike.",
    ),
    (
        "accounts.txt",
        b"Deleting accounts. Delete an account with close_account(user); delete requests "
        b"are final, and a deleted account cannot be restored.",
    ),
    ("owls.txt", b"Owls hunt at night using silent flight and keen hearing."),
]
SECRET = "quokkazephyrine"
FIRST = f"How do I create a temporary scratch folder for my {SECRET} files?"
FOLLOW_UP = "And how do I delete it?"


def with_conversations(settings: Settings, **values: Any) -> Settings:
    """These conversation options (the rules rewrite by default); answers never abstain."""
    options = {"rewrite": "rules", **values}
    return settings.model_copy(
        update={
            "conversations": settings.conversations.model_copy(update=options),
            "llm": settings.llm.model_copy(update={"abstain_below": 0.0}),
        }
    )


def upload_docs(client: TestClient, collection: str = "default") -> None:
    files = [("files", (name, io.BytesIO(data))) for name, data in DOCS]
    resp = client.post(f"/v1/collections/{collection}/documents", files=files)
    assert resp.status_code == 201, resp.text


@pytest.fixture
def conv_settings(settings: Settings) -> Settings:
    return with_conversations(settings)


@pytest.fixture
def client(conv_settings: Settings) -> Iterator[TestClient]:
    with running_app(conv_settings, HashEmbedder(), EchoGenerator()) as c:
        upload_docs(c)
        yield c


def start(client: TestClient, collection: str = "default") -> str:
    resp = client.post("/v1/conversations", json={"collection": collection})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["collection"] == collection
    assert body["turns"] == []
    return str(body["id"])


def ask(client: TestClient, conversation: str, question: str, **extra: Any) -> dict[str, Any]:
    resp = client.post(
        "/v1/collections/default/query",
        json={"question": question, "conversation_id": conversation, "top_k": 2, **extra},
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_a_follow_up_is_rewritten_answered_and_stored(client: TestClient) -> None:
    conversation = start(client)
    first = ask(client, conversation, FIRST)
    assert (first["conversation_id"], first["turn"]) == (conversation, 1)
    assert first["rewritten_query"] == FIRST
    assert first["rewrite"] == "none"  # no earlier turn: searched as asked

    second = ask(client, conversation, FOLLOW_UP)
    assert second["turn"] == 2
    assert second["rewrite"] == "rules"
    query = second["rewritten_query"]
    assert query.startswith(FOLLOW_UP)
    assert {"temporary", "scratch", "folder"} <= set(query.lower().split())
    # The rewritten query finds the removal passage; the follow-up alone finds accounts.txt
    # (test_rewrite_off_searches_the_question_as_asked).
    assert "removal.txt" in [c["source"] for c in second["citations"]]
    assert second["citations"][0]["source"] != "accounts.txt"

    stored = client.get(f"/v1/conversations/{conversation}").json()
    assert [t["position"] for t in stored["turns"]] == [1, 2]
    turn = stored["turns"][1]
    assert (turn["question"], turn["rewritten_query"], turn["rewrite"]) == (
        FOLLOW_UP,
        query,
        "rules",
    )
    assert turn["answer"] == second["answer"]
    assert [c["source"] for c in turn["citations"]] == [c["source"] for c in second["citations"]]
    assert "quote" not in turn["citations"][0]  # passages are not copied into the turns


def test_the_model_sees_the_earlier_turns_as_history(conv_settings: Settings) -> None:
    generator = EchoGenerator()
    with running_app(conv_settings, HashEmbedder(), generator) as client:
        upload_docs(client)
        conversation = start(client)
        first = ask(client, conversation, FIRST, answer_mode="generative")
        ask(client, conversation, FOLLOW_UP, answer_mode="generative")
    sent = "\n".join(m["content"] for m in generator.calls[-1])
    assert FIRST in sent
    assert first["answer"] in sent


def test_a_standalone_question_is_not_rewritten(client: TestClient) -> None:
    conversation = start(client)
    ask(client, conversation, FIRST)
    owls = "What helps owls hunt at night without being heard?"
    body = ask(client, conversation, owls)
    assert (body["rewritten_query"], body["rewrite"]) == (owls, "none")


def test_rewrite_off_searches_the_question_as_asked(settings: Settings) -> None:
    with running_app(
        with_conversations(settings, rewrite="off"), HashEmbedder(), EchoGenerator()
    ) as client:
        upload_docs(client)
        conversation = start(client)
        ask(client, conversation, FIRST)
        body = ask(client, conversation, FOLLOW_UP)
    assert (body["rewritten_query"], body["rewrite"]) == (FOLLOW_UP, "none")
    assert body["citations"][0]["source"] == "accounts.txt"


def test_a_query_without_conversation_reports_no_rewrite(client: TestClient) -> None:
    body = client.post("/v1/collections/default/query", json={"question": FIRST}).json()
    assert body["conversation_id"] is None
    assert body["rewritten_query"] is None


def test_query_history_is_rewritten_against_too(client: TestClient) -> None:
    history = [{"role": "user", "content": FIRST}, {"role": "assistant", "content": "Use it."}]
    resp = client.post(
        "/v1/collections/default/query",
        json={"question": FOLLOW_UP, "history": history, "top_k": 2},
    )
    body = resp.json()
    assert body["rewrite"] == "rules"
    assert "scratch" in body["rewritten_query"]
    assert body["conversation_id"] is None


def test_unknown_conversation_is_a_404_saying_what_to_do(client: TestClient) -> None:
    for resp in (
        client.post(
            "/v1/collections/default/query", json={"question": "hi", "conversation_id": "nope"}
        ),
        client.get("/v1/conversations/nope"),
        client.delete("/v1/conversations/nope"),
    ):
        assert resp.status_code == 404, resp.text
        error = resp.json()["error"]
        assert error["type"] == "ConversationNotFound"
        assert "conversation 'nope' does not exist" in error["message"]
        assert "POST /v1/conversations" in error["message"]


def test_bad_conversation_requests_are_refused_and_store_nothing(client: TestClient) -> None:
    assert client.post("/v1/conversations", json={"collection": "missing"}).status_code == 404
    assert client.post("/v1/conversations", json={"colection": "default"}).status_code == 422
    conversation = start(client)
    both = client.post(
        "/v1/collections/default/query",
        json={
            "question": FOLLOW_UP,
            "conversation_id": conversation,
            "history": [{"role": "user", "content": FIRST}],
        },
    )
    assert both.status_code == 422
    assert "either history or conversation_id" in both.json()["error"]["message"]
    assert client.post("/v1/collections", json={"name": "other"}).status_code == 201
    elsewhere = client.post(
        "/v1/collections/other/query", json={"question": FIRST, "conversation_id": conversation}
    )
    assert elsewhere.status_code == 422
    assert "belongs to collection 'default'" in elsewhere.json()["error"]["message"]
    assert client.get(f"/v1/conversations/{conversation}").json()["turns"] == []


def test_streaming_reports_the_rewrite_and_stores_the_turn(client: TestClient) -> None:
    conversation = start(client)
    ask(client, conversation, FIRST)
    resp = client.post(
        "/v1/collections/default/query",
        json={"question": FOLLOW_UP, "conversation_id": conversation, "stream": True},
    )
    events = sse_events(resp.text)
    done = next(data for name, data in events if name == "done")
    assert (done["turn"], done["rewrite"]) == (2, "rules")
    assert "scratch" in done["rewritten_query"]
    turns = client.get(f"/v1/conversations/{conversation}").json()["turns"]
    assert [t["answer"] for t in turns][-1] == done["answer"]


def test_chat_completions_rewrite_the_last_user_message(client: TestClient) -> None:
    messages = [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": "Call make_scratch_dir()."},
        {"role": "user", "content": FOLLOW_UP},
    ]
    body = client.post(
        "/v1/chat/completions", json={"model": "rag:default", "messages": messages}
    ).json()
    assert body["rewrite"] == "rules"
    assert "scratch" in body["rewritten_query"]
    assert "removal.txt" in [s["source"] for s in body["sources"]]
    streamed = client.post(
        "/v1/chat/completions",
        json={"model": "rag:default", "messages": messages, "stream": True},
    )
    frames = [json.loads(f[6:]) for f in streamed.text.strip().split("\n\n")[:-1]]
    assert frames[-1]["rewritten_query"] == body["rewritten_query"]
    alone = client.post(
        "/v1/chat/completions", json={"model": "rag:default", "messages": messages[-1:]}
    ).json()
    assert alone["rewritten_query"] is None


def test_deleting_a_conversation_removes_its_text_from_the_data_directory(
    client: TestClient, conv_settings: Settings
) -> None:
    conversation = start(client)
    ask(client, conversation, FIRST)
    ask(client, conversation, FOLLOW_UP)
    kept = start(client)
    ask(client, kept, "How do owls hunt at night?")
    assert files_holding(conv_settings.data_dir, SECRET), "the check must see the word first"

    assert client.delete(f"/v1/conversations/{conversation}").status_code == 204
    assert files_holding(conv_settings.data_dir, SECRET) == []
    assert client.get(f"/v1/conversations/{conversation}").status_code == 404
    assert len(client.get(f"/v1/conversations/{kept}").json()["turns"]) == 1


def test_deleting_a_collection_deletes_its_conversations(client: TestClient) -> None:
    assert client.post("/v1/collections", json={"name": "notes"}).status_code == 201
    upload_docs(client, "notes")
    conversation = start(client, "notes")
    resp = client.post(
        "/v1/collections/notes/query", json={"question": FIRST, "conversation_id": conversation}
    )
    assert resp.status_code == 200, resp.text
    assert client.delete("/v1/collections/notes").status_code == 204
    assert client.get(f"/v1/conversations/{conversation}").status_code == 404


def test_conversations_survive_a_restart(conv_settings: Settings) -> None:
    with running_app(conv_settings, HashEmbedder(), EchoGenerator()) as client:
        upload_docs(client)
        conversation = start(client)
        ask(client, conversation, FIRST)
    with running_app(conv_settings, HashEmbedder(), EchoGenerator()) as client:
        turns = client.get(f"/v1/conversations/{conversation}").json()["turns"]
        assert [t["question"] for t in turns] == [FIRST]
        body = ask(client, conversation, FOLLOW_UP)  # the rewrite reads the stored turn
    assert body["turn"] == 2
    assert "scratch" in body["rewritten_query"]


def test_the_prompt_preview_shows_the_rewritten_follow_up_and_stores_nothing(
    client: TestClient,
) -> None:
    conversation = start(client)
    first = ask(client, conversation, FIRST)
    resp = client.post(
        "/v1/collections/default/prompts/preview",
        json={"question": FOLLOW_UP, "conversation_id": conversation, "top_k": 2},
    )
    assert resp.status_code == 200, resp.text
    messages = resp.json()["messages"]
    last = messages[-1]["content"]
    assert FOLLOW_UP in last
    assert "scratch" in last.split(FOLLOW_UP, 1)[1]  # the rewritten query is what is asked
    assert any(first["answer"] in m["content"] for m in messages)  # the turn is history
    assert len(client.get(f"/v1/conversations/{conversation}").json()["turns"]) == 1
