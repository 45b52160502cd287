"""OpenAI-compatible chat completions: any OpenAI client can ask a collection questions."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from app.deps import ServicesDep
from app.errors import status_for
from app.mapping import answer_facts, followup_facts
from app.schemas import (
    AnswerFacts,
    ChatChoice,
    ChatChoiceMessage,
    ChatCompletion,
    ChatCompletionRequest,
    ChatUsage,
    CitationOut,
    ModelCard,
    ModelList,
    OpenAIMessage,
    problems,
)
from app.security import check_collection_access, visible_collections
from app.services.answers import AnswerRequest, AnswerResult, LLMOptions
from app.services.container import Services
from app.services.conversations import ConversationAnswer
from core.errors import CollectionNotFound, InvalidRequest, RagError

router = APIRouter(tags=["openai"])
MODEL_PREFIX = "rag:"


def collection_of(model: str) -> str:
    """The collection a model name points at: ``rag:NAME`` or ``NAME``."""
    name = model[len(MODEL_PREFIX) :] if model.startswith(MODEL_PREFIX) else model
    if not name:
        raise InvalidRequest("model must name a collection, e.g. 'rag:default'")
    return name


def check_model(services: Services, request: Request, model: str, collection: str) -> None:
    """Refuse a model that names no collection, listing the ones to use (before any model loads).

    Raises:
        CollectionNotFound: with the ``rag:NAME`` models the caller may use.
    """
    try:
        services.collections.get(collection)
    except CollectionNotFound:
        names = visible_collections(request, [c.name for c in services.collections.list()])
        models = ", ".join(f"{MODEL_PREFIX}{name}" for name in names) or "none"
        raise CollectionNotFound(
            f"model '{model}' is not a collection of this server: here a model names the "
            f"collection to answer from, as 'rag:NAME'; use one of {models} "
            "(GET /v1/models lists them)",
            {"model": model, "models": [f"{MODEL_PREFIX}{name}" for name in names]},
        ) from None


def text_of(message: OpenAIMessage) -> str:
    """The text of a message whose content is a string or a list of parts."""
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "".join(
        str(part.get("text", "")) for part in message.content if part.get("type") == "text"
    )


def to_answer_request(body: ChatCompletionRequest) -> AnswerRequest:
    """Last user message = question; earlier user/assistant turns = history; system = role."""
    messages = body.messages
    if messages[-1].role != "user":
        raise InvalidRequest("the last message must be the user's question")
    question = text_of(messages[-1])
    system = " ".join(text_of(m) for m in messages if m.role in ("system", "developer")).strip()
    history = [
        {"role": m.role, "content": text_of(m)}
        for m in messages[:-1]
        if m.role in ("user", "assistant")
    ]
    return AnswerRequest(
        question=question,
        role=system or None,
        history=history,
        llm=LLMOptions(
            temperature=body.temperature,
            max_tokens=body.max_completion_tokens or body.max_tokens,
        ),
        answer_mode=body.answer_mode,
    )


def sources(result: AnswerResult) -> list[dict[str, Any]]:
    """The citations as JSON-ready dicts."""
    return [CitationOut(**asdict(c)).model_dump() for c in result.citations]


def chunk_frame(cid: str, created: int, model: str, delta: dict[str, Any], **extra: Any) -> str:
    """One ``chat.completion.chunk`` SSE frame."""
    body = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": extra.pop("finish", None)}],
        **extra,
    }
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


async def openai_stream(
    events: AsyncIterator[str | ConversationAnswer], model: str
) -> AsyncIterator[str]:
    """Stream in OpenAI's chunk format; the last chunk carries usage and sources."""
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    yield chunk_frame(cid, created, model, {"role": "assistant", "content": ""})
    try:
        async for item in events:
            if isinstance(item, str):
                yield chunk_frame(cid, created, model, {"content": item})
            else:
                result = item.result
                usage = ChatUsage(
                    prompt_tokens=result.usage["prompt_tokens"],
                    completion_tokens=result.usage["completion_tokens"],
                    total_tokens=result.usage["total_tokens"],
                )
                yield chunk_frame(
                    cid,
                    created,
                    model,
                    {},
                    finish=result.finish_reason,
                    usage=usage.model_dump(),
                    sources=sources(result),
                    **AnswerFacts(**answer_facts(result)).model_dump(),
                    **followup_facts(item),
                )
    except RagError as exc:
        error = {"message": exc.message, "type": type(exc).__name__, "code": status_for(exc)}
        yield f"data: {json.dumps({'error': error})}\n\n"
    yield "data: [DONE]\n\n"


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}}, **problems(404, 413, 502, 504)},
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, services: ServicesDep
) -> ChatCompletion | StreamingResponse:
    """Answer the last user message from the collection that ``model`` names."""
    collection = collection_of(body.model)
    check_collection_access(request, collection)
    check_model(services, request, body.model, collection)
    answer_req = to_answer_request(body)
    if body.stream:
        events = await services.conversations.open_stream(collection, answer_req)
        return StreamingResponse(openai_stream(events, body.model), media_type="text/event-stream")
    answered = await services.conversations.answer(collection, answer_req)
    result = answered.result
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=body.model,
        choices=[
            ChatChoice(
                index=0,
                message=ChatChoiceMessage(content=result.answer),
                finish_reason=result.finish_reason,
            )
        ],
        usage=ChatUsage(
            prompt_tokens=result.usage["prompt_tokens"],
            completion_tokens=result.usage["completion_tokens"],
            total_tokens=result.usage["total_tokens"],
        ),
        sources=[CitationOut(**asdict(c)) for c in result.citations],
        **answer_facts(result),
        **followup_facts(answered),
    )


@router.get("/models", response_model=ModelList, responses=problems())
def list_models(request: Request, services: ServicesDep) -> ModelList:
    """List the collections the caller may use, as models (``rag:NAME``)."""
    now = int(time.time())
    names = visible_collections(request, [c.name for c in services.collections.list()])
    return ModelList(data=[ModelCard(id=f"{MODEL_PREFIX}{name}", created=now) for name in names])
