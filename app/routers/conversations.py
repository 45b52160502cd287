"""Conversations: follow-up questions asked with ``conversation_id`` on ``/query``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from app.conversation_schemas import ConversationCreate, ConversationOut
from app.deps import ServicesDep
from app.mapping import conversation_out
from app.schemas import problems
from app.security import check_collection_access

router = APIRouter(tags=["conversations"])


@router.post(
    "/conversations", status_code=201, response_model=ConversationOut, responses=problems(404)
)
async def create_conversation(
    body: ConversationCreate, request: Request, services: ServicesDep
) -> ConversationOut:
    """Start a conversation over a collection; ask in it with ``conversation_id`` on /query."""
    check_collection_access(request, body.collection)
    conversation = await asyncio.to_thread(services.conversations.create, body.collection)
    return conversation_out(conversation)


@router.get(
    "/conversations/{conversation_id}", response_model=ConversationOut, responses=problems(404)
)
async def get_conversation(
    conversation_id: str, request: Request, services: ServicesDep
) -> ConversationOut:
    """A conversation with its turns: questions, rewritten queries, answers, citations."""
    conversation = await asyncio.to_thread(services.conversations.get, conversation_id)
    check_collection_access(request, conversation.collection)
    return conversation_out(conversation)


@router.delete("/conversations/{conversation_id}", status_code=204, responses=problems(404))
async def delete_conversation(
    conversation_id: str, request: Request, services: ServicesDep
) -> Response:
    """Delete a conversation and every turn's text."""
    conversation = await asyncio.to_thread(services.conversations.get, conversation_id)
    check_collection_access(request, conversation.collection)
    await asyncio.to_thread(services.conversations.delete, conversation_id)
    return Response(status_code=204)
