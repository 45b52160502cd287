"""The Python client against a live ragserver: every method, progress, errors, retries."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from ragserver_client import (
    Answer,
    Client,
    ConflictError,
    Delta,
    InvalidRequestError,
    Job,
    NotFoundError,
    RagServerError,
    ServiceUnavailableError,
)
from ragserver_client import client as client_module
from ragserver_client._core import retry_delay

from tests.clients.conftest import COLLECTION, HEAP_QUESTION, MODEL, PAGES
from tests.clients.stub import Reply, stub_server
from tests.integration.live import LiveServer

pytestmark = pytest.mark.integration

NOTE = (
    "Harbour office notes. The ferry to Skerry Island leaves at 7:40 every weekday morning. "
    "Tickets are sold at the blue kiosk next to pier 3."
)


@pytest.fixture
def rag(live_server: LiveServer) -> Client:
    with Client(live_server.url) as client:
        yield client  # type: ignore[misc]


def test_collections_create_get_list_delete(rag: Client) -> None:
    assert rag.ready()
    created = rag.create_collection("client-colls")
    assert (created.name, created.documents, created.chunks) == ("client-colls", 0, 0)
    assert created.embedding_model == MODEL
    assert created.dimension == 384
    names = [c.name for c in rag.list_collections()]
    assert {"default", COLLECTION, "client-colls"} <= set(names)
    pydocs = rag.get_collection(COLLECTION)
    assert pydocs.documents == len(PAGES)
    assert pydocs.chunks > len(PAGES)
    with pytest.raises(ConflictError) as conflict:
        rag.create_collection("client-colls")
    assert conflict.value.status == 409
    assert conflict.value.type == "CollectionExists"
    rag.delete_collection("client-colls")
    with pytest.raises(NotFoundError):
        rag.get_collection("client-colls")


def test_upload_paths_and_bytes_then_documents_chunks_and_delete(rag: Client) -> None:
    rag.create_collection("client-docs")
    try:
        result = rag.upload(
            "client-docs",
            [PAGES[0], ("harbour.txt", NOTE.encode()), ("notes.md", io.BytesIO(b"# Notes\n\nok"))],
            metadata={"team": "harbour"},
            chunk_size=64,
            chunk_overlap=8,
        )
        assert result.collection == "client-docs"
        assert [f.status for f in result.files] == ["created"] * 3
        assert [f.filename for f in result.files] == [PAGES[0].name, "harbour.txt", "notes.md"]
        page = rag.list_documents("client-docs", limit=2)
        assert (page.total, page.limit, len(page.documents)) == (3, 2, 2)
        second = rag.list_documents("client-docs", limit=2, offset=2)
        assert len(second.documents) == 1
        harbour_id = next(f.document_id for f in result.files if f.filename == "harbour.txt")
        assert harbour_id is not None
        document = rag.get_document("client-docs", harbour_id)
        assert document.filename == "harbour.txt"
        assert document.metadata == {"team": "harbour"}
        assert document.chunks >= 1
        filtered = rag.list_documents("client-docs", filter={"team": "nobody"})
        assert filtered.total == 0
        chunks = rag.get_chunks("client-docs", harbour_id)
        assert [c.position for c in chunks] == list(range(len(chunks)))
        assert "7:40" in " ".join(c.text for c in chunks)
        again = rag.upload(
            "client-docs",
            ("harbour.txt", NOTE.encode()),
            metadata={"team": "harbour"},
            chunk_size=64,
            chunk_overlap=8,
        )
        assert [f.status for f in again.files] == ["unchanged"]
        rag.delete_document("client-docs", harbour_id)
        with pytest.raises(NotFoundError) as missing:
            rag.get_document("client-docs", harbour_id)
        assert missing.value.type == "DocumentNotFound"
        assert harbour_id in missing.value.message
    finally:
        rag.delete_collection("client-docs")


def test_a_background_upload_reports_progress_until_done(rag: Client, tmp_path: Path) -> None:
    rag.create_collection("client-jobs")
    seen: list[Job] = []
    try:
        result = rag.upload("client-jobs", PAGES[:3], progress=seen.append, poll_interval=0.05)
        assert [f.status for f in result.files] == ["created"] * 3
        assert seen, "progress was never called"
        last = seen[-1]
        assert last.state == "succeeded"
        assert (last.files_done, last.files_total) == (3, 3)
        assert last.chunks_embedded == sum(f.chunks for f in result.files) > 0
        done = [job.files_done for job in seen]
        assert done == sorted(done), "progress went backwards"
        job = rag.upload_background("client-jobs", ("late.txt", NOTE.encode()))
        assert job.state in ("queued", "running", "succeeded")
        finished = rag.wait_for_job(job.id, poll_interval=0.05, timeout=300)
        assert finished.state == "succeeded"
        assert rag.get_job(job.id).files[0].filename == "late.txt"
    finally:
        rag.delete_collection("client-jobs")


def test_search_finds_the_right_page_with_every_mode(rag: Client) -> None:
    for mode in ("dense", "bm25", "hybrid"):
        result = rag.search(COLLECTION, HEAP_QUESTION, top_k=3, mode=mode)
        assert result.mode == mode
        assert len(result.hits) == 3
        assert result.hits[0].filename == "heapq.html", mode
        assert result.hits[0].score >= result.hits[1].score
    filtered = rag.search(COLLECTION, HEAP_QUESTION, top_k=3, filter={"source": "json.html"})
    assert {h.filename for h in filtered.hits} == {"json.html"}


def test_query_whole_and_streamed(rag: Client) -> None:
    answer = rag.query(COLLECTION, HEAP_QUESTION, top_k=2, max_tokens=16)
    assert isinstance(answer, Answer)
    assert answer.answer.strip()
    assert answer.citations[0].filename == "heapq.html"
    assert answer.usage["completion_tokens"] > 0
    items = list(rag.query_stream(COLLECTION, HEAP_QUESTION, top_k=2, max_tokens=16))
    deltas = [item for item in items if isinstance(item, Delta)]
    final = items[-1]
    assert isinstance(final, Answer)
    assert deltas, "no text was streamed"
    assert all(isinstance(item, Delta) for item in items[:-1])
    assert "".join(d.text for d in deltas).strip() == final.answer.strip()
    assert final.citations[0].filename == "heapq.html"
    assert final.usage["completion_tokens"] > 0


def test_a_conversation_rewrites_its_follow_up_and_keeps_its_turns(rag: Client) -> None:
    conversation = rag.create_conversation(COLLECTION)
    assert (conversation.collection, conversation.turns) == (COLLECTION, [])
    first = rag.query(COLLECTION, HEAP_QUESTION, top_k=2, conversation_id=conversation.id)
    assert (first.turn, first.rewrite) == (1, "none")
    follow_up = "And how do I take the smallest one off it?"
    second = rag.query(COLLECTION, follow_up, top_k=2, conversation_id=conversation.id)
    assert (second.conversation_id, second.turn, second.rewrite) == (conversation.id, 2, "rules")
    assert second.rewritten_query is not None
    assert "heap" in second.rewritten_query.lower().split()
    assert second.citations[0].filename == "heapq.html"
    turns = rag.get_conversation(conversation.id).turns
    assert [(t.question, t.answer) for t in turns] == [
        (HEAP_QUESTION, first.answer),
        (follow_up, second.answer),
    ]
    rag.delete_conversation(conversation.id)
    with pytest.raises(NotFoundError):
        rag.get_conversation(conversation.id)


def test_prompts_and_preview(rag: Client) -> None:
    names = {p.name for p in rag.list_prompts()}
    assert {"zero_shot", "few_shot", "chain_of_thought"} <= names
    preview = rag.preview_prompt(COLLECTION, HEAP_QUESTION, top_k=2, strategy="zero_shot")
    assert preview.template == "zero_shot"
    assert preview.messages[-1].role == "user"
    assert HEAP_QUESTION in preview.messages[-1].content
    assert preview.citations[0].filename == "heapq.html"
    assert preview.usage["prompt_tokens"] > 0


def test_embed(rag: Client) -> None:
    result = rag.embed(["a heap queue", "json"], "all-MiniLM-L6-v2")
    assert result.model == MODEL
    assert [len(v) for v in result.vectors] == [384, 384]
    assert result.tokens > 0


def test_problem_json_becomes_a_typed_error(rag: Client) -> None:
    with pytest.raises(NotFoundError) as missing:
        rag.search("no-such-collection", "anything")
    error = missing.value
    assert (error.status, error.type) == (404, "CollectionNotFound")
    assert "no-such-collection" in error.message
    with pytest.raises(InvalidRequestError) as invalid:
        rag.create_collection("x")
    assert invalid.value.status == 422
    assert invalid.value.type == "InvalidRequest"
    assert invalid.value.detail["errors"][0]["loc"][-1] == "name"
    with pytest.raises(RagServerError) as stream_error:
        list(rag.query_stream("no-such-collection", "anything"))
    assert isinstance(stream_error.value, NotFoundError)


def test_503_is_retried_after_retry_after_with_the_key_as_bearer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", waits.append)
    unavailable = Reply(
        503,
        {"error": {"type": "Overloaded", "message": "busy; retry", "detail": {}}},
        {"Retry-After": "7"},
    )
    listing = {"collections": [{"name": "default", "embedding_model": "m", "dimension": 3,
                                "documents": 0, "chunks": 0}]}  # fmt: skip
    with (
        stub_server([unavailable, Reply(200, listing)]) as stub,
        Client(stub.url, api_key="s3cret") as client,
    ):
        collections = client.list_collections()
    assert [c.name for c in collections] == ["default"]
    assert waits == [7.0]
    assert [s.path for s in stub.seen] == ["/v1/collections", "/v1/collections"]
    assert all(s.headers["authorization"] == "Bearer s3cret" for s in stub.seen)


def test_503_after_the_last_retry_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", waits.append)
    unavailable = Reply(503, {"error": {"type": "BackendUnavailable", "message": "loading"}})
    with (
        stub_server([unavailable]) as stub,
        Client(stub.url, max_retries=2) as client,
        pytest.raises(ServiceUnavailableError) as err,
    ):
        client.list_collections()
    assert len(stub.seen) == 3
    assert waits == [0.5, 1.0]  # no Retry-After: exponential backoff
    assert (err.value.type, err.value.message) == ("BackendUnavailable", "loading")


def test_retry_after_as_a_date_and_the_cap() -> None:
    request = httpx.Request("GET", "http://x")
    in_the_past = httpx.Response(
        503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, request=request
    )
    assert retry_delay(in_the_past, 0, 60) == 0.0
    too_long = httpx.Response(503, headers={"Retry-After": "3600"}, request=request)
    assert retry_delay(too_long, 0, 60) == 60
