"""Questions answered from a collection, whole or as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from app.deps import ServicesDep
from app.errors import status_for
from app.schemas import CitationOut, EvidenceOut, QueryRequest, QueryResponse, problems
from app.services.answers import AnswerRequest, AnswerResult, LLMOptions
from core.errors import RagError

router = APIRouter(tags=["answers"])

SSE_DOC = (
    "With `stream: true` the answer comes as `text/event-stream`: `delta` events "
    '(`{"text": ...}`), then one `done` event holding the whole QueryResponse; a failure '
    "after the stream started is an `error` event with the problem body."
)


def answer_request(body: QueryRequest) -> AnswerRequest:
    """Convert the API request to the service's."""
    llm = body.llm
    return AnswerRequest(
        question=body.question,
        strategy=body.strategy,
        role=body.role,
        examples=[e.model_dump() for e in body.examples] if body.examples is not None else None,
        history=[m.model_dump() for m in body.history],
        top_k=body.top_k,
        filter=body.filter,
        mode=body.mode,
        params=body.params,
        llm=LLMOptions(llm.model, llm.temperature, llm.max_tokens) if llm else LLMOptions(),
        answer_mode=body.answer_mode,
    )


def query_response(result: AnswerResult) -> QueryResponse:
    """Convert the service's result to the API model."""
    return QueryResponse(
        answer=result.answer,
        reasoning=result.reasoning,
        citations=[CitationOut(**asdict(c)) for c in result.citations],
        usage=result.usage,
        timings=result.timings,
        model=result.model,
        **answer_facts(result),
    )


def answer_facts(result: AnswerResult) -> dict[str, Any]:
    """The evidence, mode and abstention of an answer, as response fields."""
    return {
        "evidence": [
            EvidenceOut(citation=e.citation, start=e.start, end=e.end, text=e.text, score=e.score)
            for e in result.evidence
        ],
        "answer_mode": result.answer_mode,
        "abstained": result.abstained,
        "confidence": result.confidence,
    }


def sse(event: str, data: object) -> str:
    """Format one Server-Sent Event."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def sse_answer(events: AsyncIterator[str | AnswerResult]) -> AsyncIterator[str]:
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
    if body.stream:
        events = await services.answers.open_stream(name, request)
        return StreamingResponse(
            sse_answer(events),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return query_response(await services.answers.answer(name, request))
