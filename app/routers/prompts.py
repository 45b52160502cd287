"""Prompt templates and prompt previews."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from app.deps import ServicesDep
from app.mapping import answer_request, preview_response
from app.schemas import PreviewResponse, PromptInfoOut, PromptList, PromptPreviewRequest, problems
from app.security import check_collection_access

router = APIRouter(tags=["prompts"])


@router.get("/prompts", response_model=PromptList, responses=problems())
def list_prompts(services: ServicesDep) -> PromptList:
    """List prompt templates and their parameters."""
    infos = services.answers.registry.list()
    return PromptList(prompts=[PromptInfoOut(**info.to_dict()) for info in infos])


@router.post("/prompts/preview", response_model=PreviewResponse, responses=problems(404, 413))
async def preview_prompt(
    body: PromptPreviewRequest, request: Request, services: ServicesDep
) -> PreviewResponse:
    """Render the messages and budget report a query would use, without calling a model."""
    check_collection_access(request, body.collection)
    answer_req = answer_request(body)
    prepared = await asyncio.to_thread(services.answers.prepare, body.collection, answer_req)
    return preview_response(prepared)
