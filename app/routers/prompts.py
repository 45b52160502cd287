"""Prompt templates and prompt previews."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.deps import ServicesDep
from app.mapping import answer_request, preview_response
from app.schemas import (
    PreviewResponse,
    PromptInfoOut,
    PromptList,
    PromptPreviewRequest,
    QueryRequest,
    problems,
)
from app.security import check_collection_access
from app.services.container import Services

router = APIRouter(tags=["prompts"])


@router.get("/prompts", response_model=PromptList, responses=problems())
def list_prompts(services: ServicesDep) -> PromptList:
    """List prompt templates and their parameters."""
    infos = services.answers.registry.list()
    return PromptList(prompts=[PromptInfoOut(**info.to_dict()) for info in infos])


async def render_preview(
    services: Services, request: Request, collection: str, body: QueryRequest
) -> PreviewResponse:
    """The messages and budget report a query on ``collection`` would use."""
    check_collection_access(request, collection)
    answer_req = answer_request(body)
    prepared = await services.conversations.preview(collection, answer_req, body.conversation_id)
    return preview_response(prepared)


@router.post(
    "/collections/{name}/prompts/preview",
    response_model=PreviewResponse,
    responses=problems(404, 413),
)
async def preview_prompt(
    name: str, body: QueryRequest, request: Request, services: ServicesDep
) -> PreviewResponse:
    """Render the messages and budget report a query would use, without calling a model."""
    return await render_preview(services, request, name, body)


@router.post(
    "/prompts/preview",
    response_model=PreviewResponse,
    responses=problems(404, 413),
    deprecated=True,
)
async def preview_prompt_legacy(
    body: PromptPreviewRequest, request: Request, services: ServicesDep
) -> PreviewResponse:
    """Deprecated: use /collections/{name}/prompts/preview; this one reads the body's collection."""
    query = QueryRequest.model_validate(body.model_dump(exclude={"collection"}))
    return await render_preview(services, request, body.collection, query)
