"""Questions answered from a collection, whole or as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from app.deps import ServicesDep
from app.errors import status_for
from app.mapping import answer_request, query_response
from app.schemas import QueryRequest, QueryResponse, problems
from app.services.conversations import ConversationAnswer
from core.errors import RagError

router = APIRouter(tags=["answers"])

SSE_DOC = (
    "With `stream: true` the answer comes as `text/event-stream`: `delta` events "
    '(`{"text": ...}`), then one `done` event holding the whole QueryResponse; a failure '
    "after the stream started is an `error` event with the problem body."
)


def sse(event: str, data: object) -> str:
    """Format one Server-Sent Event."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def sse_answer(events: AsyncIterator[str | ConversationAnswer]) -> AsyncIterator[str]:
    """Turn the service's stream into SSE frames."""
    try:
        async for item in events:
            if isinstance(item, str):
                yield sse("delta", {"text": item})
            else:
                yield sse("done", query_response(item).model_dump())
    except RagError as exc:
        body = {"type": type(exc).__name__, "message": exc.message, "status": status_for(exc)}
        yield sse("error", {"error": body})


@router.post(
    "/collections/{name}/query",
    response_model=QueryResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": SSE_DOC},
        **problems(404, 413, 502, 504),
    },
)
async def query(
    name: str, body: QueryRequest, services: ServicesDep
) -> QueryResponse | StreamingResponse:
    """Answer a question from a collection, with citations."""
    request = answer_request(body)
    conversations = services.conversations
    if body.stream:
        events = await conversations.open_stream(name, request, body.conversation_id)
        return StreamingResponse(
            sse_answer(events),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return query_response(await conversations.answer(name, request, body.conversation_id))
