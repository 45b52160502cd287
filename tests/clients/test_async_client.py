"""AsyncClient against the live ragserver: the same calls, awaited, and the stream."""

from __future__ import annotations

import asyncio

import pytest
from ragserver_client import Answer, AsyncClient, Delta, Job, NotFoundError, async_client

from tests.clients.conftest import COLLECTION, HEAP_QUESTION, PAGES
from tests.clients.stub import Reply, stub_server
from tests.integration.live import LiveServer

pytestmark = pytest.mark.integration


def test_async_client_end_to_end(live_server: LiveServer) -> None:
    seen: list[Job] = []

    async def scenario() -> tuple[list[Delta | Answer], Answer]:
        async with AsyncClient(live_server.url) as rag:
            assert await rag.ready()
            created = await rag.create_collection("async-docs")
            assert created.name == "async-docs"
            assert "async-docs" in [c.name for c in await rag.list_collections()]
            result = await rag.upload(
                "async-docs", [PAGES[1], PAGES[2]], progress=seen.append, poll_interval=0.05
            )
            assert [f.status for f in result.files] == ["created", "created"]
            document_id = result.files[0].document_id
            assert document_id is not None
            page = await rag.list_documents("async-docs")
            assert page.total == 2
            assert (await rag.get_document("async-docs", document_id)).filename == PAGES[1].name
            assert await rag.get_chunks("async-docs", document_id)
            await rag.delete_document("async-docs", document_id)
            with pytest.raises(NotFoundError):
                await rag.get_document("async-docs", document_id)
            assert (await rag.get_collection("async-docs")).documents == 1
            await rag.delete_collection("async-docs")
            hits = (await rag.search(COLLECTION, HEAP_QUESTION, top_k=2)).hits
            assert hits[0].filename == "heapq.html"
            preview = await rag.preview_prompt(COLLECTION, HEAP_QUESTION, top_k=1)
            assert preview.citations[0].filename == "heapq.html"
            assert {p.name for p in await rag.list_prompts()} >= {"zero_shot"}
            assert len((await rag.embed("heap", "all-MiniLM-L6-v2")).vectors[0]) == 384
            items = [
                item
                async for item in rag.query_stream(
                    COLLECTION, HEAP_QUESTION, top_k=2, max_tokens=12
                )
            ]
            whole = await rag.query(COLLECTION, HEAP_QUESTION, top_k=2, max_tokens=12)
            return items, whole

    items, whole = asyncio.run(scenario())
    assert seen
    assert seen[-1].state == "succeeded"
    assert seen[-1].files_done == 2
    final = items[-1]
    assert isinstance(final, Answer)
    deltas = [i for i in items[:-1] if isinstance(i, Delta)]
    assert len(deltas) == len(items) - 1 > 0
    assert "".join(d.text for d in deltas).strip() == final.answer.strip()
    # Greedy decoding: the whole answer is the streamed one.
    assert whole.answer.strip() == final.answer.strip()
    assert whole.citations[0].filename == "heapq.html"


def test_async_client_retries_503_after_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(async_client.asyncio, "sleep", record)
    busy = Reply(503, {"error": {"type": "Overloaded", "message": "busy"}}, {"Retry-After": "2"})
    missing = Reply(404, {"error": {"type": "CollectionNotFound", "message": "no 'x'"}})

    async def scenario() -> None:
        async with AsyncClient(stub.url, api_key="k3y") as rag:
            with pytest.raises(NotFoundError) as error:
                await rag.get_collection("x")
            assert (error.value.type, error.value.message) == ("CollectionNotFound", "no 'x'")

    with stub_server([busy, busy, missing]) as stub:
        asyncio.run(scenario())
    assert waits == [2.0, 2.0]
    assert len(stub.seen) == 3
    assert {s.headers["authorization"] for s in stub.seen} == {"Bearer k3y"}
