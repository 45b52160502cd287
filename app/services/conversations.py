"""Conversations: follow-up questions rewritten into standalone queries, turns kept.

``/query`` with a ``conversation_id`` answers through ``ConversationService``: the earlier
turns are read, the question is rewritten into a standalone search query (by the answering
model when it is capable, by ``retrieval/followup.py``'s deterministic rewrite otherwise;
``RAG_CONVERSATIONS__REWRITE``), the answer service searches and answers that query with the
earlier turns as history, and the turn is stored. The chat endpoint carries its history in its
messages (or ``/query``'s ``history``); its last question goes through the same rewrite.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.settings import ConversationSettings, SecuritySettings
from core import tracing
from core.errors import InvalidRequest, RagError
from llms.base import GenerationParams
from llms.gguf import DEFAULT_MODEL_NAME
from prompts.followup import clean_rewrite, rewrite_messages
from retrieval.followup import PriorTurn, content_words, leans_on_context, rewrite_followup

from .answers import (
    AnswerRequest,
    AnswerResult,
    AnswerService,
    GeneratorHolder,
    Prepared,
    check_limits,
)
from .collections import CollectionService
from .conversation_store import Conversation, ConversationStore, Turn
from .reader import resolve_mode

log = logging.getLogger(__name__)
REWRITE_MAX_TOKENS = 64


@dataclass(frozen=True)
class Rewrite:
    """The query a question is searched with, and how it was made (``Turn.rewrite``)."""

    query: str
    method: str


@dataclass(frozen=True)
class ConversationAnswer:
    """An answer, with the conversation facts when it belongs to one.

    Attributes:
        result: The answer.
        rewrite: The standalone query searched and how it was made (None without context).
        conversation_id: The conversation the turn was stored in, if any.
        turn: The stored turn's position, if any.
    """

    result: AnswerResult
    rewrite: Rewrite | None = None
    conversation_id: str | None = None
    turn: int | None = None


def citation_records(result: AnswerResult) -> list[dict[str, Any]]:
    """The answer's citations as stored with a turn: everything but the quoted passage."""
    records = []
    for citation in result.citations:
        record = dataclasses.asdict(citation)
        del record["quote"]
        record["source"] = record.pop("filename")
        records.append(record)
    return records


def prior_turns(turns: Sequence[Turn]) -> list[PriorTurn]:
    """Stored turns as the rewrite sees them (the cited passages' headings in citation order)."""
    return [
        PriorTurn(
            question=t.question,
            answer=t.answer,
            headings=[str(c.get("heading_path", "")) for c in t.citations if c.get("cited")],
            query=t.rewritten_query,
        )
        for t in turns
    ]


def history_of(turns: Sequence[PriorTurn]) -> list[dict[str, str]]:
    """Earlier turns as chat history messages for the answering model."""
    messages: list[dict[str, str]] = []
    for turn in turns:
        messages.append({"role": "user", "content": turn.question})
        messages.append({"role": "assistant", "content": turn.answer})
    return messages


def chat_turns(history: Sequence[Mapping[str, Any]]) -> list[PriorTurn]:
    """OpenAI-style history messages paired into turns (a user message and the reply after it)."""
    turns: list[PriorTurn] = []
    for message in history:
        content = str(message.get("content", ""))
        if message.get("role") == "user":
            turns.append(PriorTurn(question=content))
        elif message.get("role") == "assistant" and turns:
            turns[-1] = dataclasses.replace(turns[-1], answer=content)
    return turns


class ConversationService:
    """Creates, reads and deletes conversations, and answers within them."""

    def __init__(
        self,
        store: ConversationStore,
        answers: AnswerService,
        generators: GeneratorHolder,
        collections: CollectionService,
        settings: ConversationSettings,
        limits: SecuritySettings,
        default_answer_mode: str = "auto",
    ) -> None:
        self._limits = limits
        self._default_answer_mode = default_answer_mode
        self._store = store
        self._answers = answers
        self._generators = generators
        self._collections = collections
        self._settings = settings

    def create(self, collection: str) -> Conversation:
        """Start an empty conversation over ``collection`` (which must exist)."""
        self._collections.get(collection)
        conversation = Conversation(uuid.uuid4().hex, collection, time.time())
        self._store.create(conversation.id, collection, conversation.created_at)
        return conversation

    def get(self, conversation_id: str) -> Conversation:
        """The conversation and its turns; ``ConversationNotFound`` if unknown."""
        return self._store.get(conversation_id)

    def delete(self, conversation_id: str) -> None:
        """Delete a conversation and its turns; ``ConversationNotFound`` if unknown."""
        if not self._store.delete(conversation_id):
            self._store.get(conversation_id)  # raises the 404 with its message

    def collection_deleted(self, collection: str) -> None:
        """Drop a deleted collection's conversations (hooked to the collection service)."""
        self._store.delete_collection(collection)

    def close(self) -> None:
        """Close the store."""
        self._store.close()

    def method(self, answer_mode: str | None = None) -> str:
        """How follow-ups are rewritten: ``model``, ``rules`` or ``off``.

        ``auto`` is the model when it is capable (not the bundled SmolLM2-135M) and will
        write the answer; an extractive answer promises no model call, so it gets the rules.
        """
        chosen = self._settings.rewrite
        if chosen != "auto":
            return chosen
        model = self._answers.model_name()
        mode = resolve_mode(answer_mode, self._default_answer_mode, model)
        return "model" if mode == "generative" and model != DEFAULT_MODEL_NAME else "rules"

    def rewrite(self, question: str, history: Sequence[PriorTurn], method: str) -> Rewrite:
        """The standalone query for ``question`` after ``history`` (blocking).

        No earlier turn, a question that stands on its own, or ``method`` ``off``: the
        question itself (``none``). The model's rewrite falls back to the rules when the model
        fails or replies with no usable query.
        """
        if not history or method == "off" or not leans_on_context(question):
            return Rewrite(question, "none")
        rewrite = Rewrite(rewrite_followup(question, history), "rules")
        if method == "model":
            query = self._model_rewrite(question, history)
            if query is not None:
                rewrite = Rewrite(query, "model")
        if len(rewrite.query) > self._limits.max_question_chars:
            return Rewrite(question, "none")
        return rewrite

    def _model_rewrite(self, question: str, history: Sequence[PriorTurn]) -> str | None:
        messages = rewrite_messages(question, [(t.question, t.answer) for t in history])
        params = GenerationParams(max_new_tokens=REWRITE_MAX_TOKENS, temperature=0.0)
        try:
            with tracing.span("generation", purpose="query rewrite"):
                completion = self._generators.get().generate(messages, params)
        except RagError as exc:
            log.warning("the model could not rewrite a follow-up (%s); using the rules", exc)
            return None
        query = clean_rewrite(completion.text)
        if query is None or not set(content_words(query)) & set(content_words(question)):
            # A rewrite keeps the user's own words; a reply without any of them answered the
            # question (or said something else) instead of rewriting it.
            log.warning("the model's rewrite %r drops the question's words; using the rules", query)
            return None
        return query

    async def _rewrite(
        self, request: AnswerRequest, history: Sequence[PriorTurn], allow_model: bool
    ) -> Rewrite:
        method = await asyncio.to_thread(self.method, request.answer_mode)
        if method == "model" and not allow_model:
            method = "rules"
        if method == "model" and history:
            async with self._answers.gate.slot():
                return await asyncio.to_thread(self.rewrite, request.question, history, method)
        return await asyncio.to_thread(self.rewrite, request.question, history, method)

    async def _prepare(
        self,
        collection: str,
        request: AnswerRequest,
        conversation_id: str | None,
        allow_model: bool = True,
    ) -> tuple[AnswerRequest, Rewrite | None]:
        """The request to answer: its question rewritten against the earlier turns, if any.

        The earlier turns are the conversation's stored ones, or else the request's own
        history (the chat endpoint's messages, ``/query``'s ``history``). Without
        ``allow_model`` the rules rewrite stands in for the model's.
        """
        check_limits(self._limits, request)
        keep = self._settings.history_turns
        if conversation_id is None:
            if not request.history:
                return request, None
            earlier = chat_turns(request.history)[-keep:] if keep else []
            rewrite = await self._rewrite(request, earlier, allow_model)
            return dataclasses.replace(request, question=rewrite.query), rewrite
        if request.history:
            raise InvalidRequest(
                "send either history or conversation_id, not both: a conversation's history "
                "is its stored turns"
            )
        conversation = await asyncio.to_thread(self._store.get, conversation_id)
        if conversation.collection != collection:
            raise InvalidRequest(
                f"conversation '{conversation_id}' belongs to collection "
                f"'{conversation.collection}'; ask it there, or start a conversation over "
                f"'{collection}'"
            )
        history = prior_turns(conversation.turns)[-keep:] if keep else []
        rewrite = await self._rewrite(request, history, allow_model)
        messages = history_of(history)[-self._limits.max_history_messages :]
        if not self._limits.max_history_messages:
            messages = []
        return dataclasses.replace(request, question=rewrite.query, history=messages), rewrite

    async def _store_turn(
        self, conversation_id: str, question: str, rewrite: Rewrite, result: AnswerResult
    ) -> ConversationAnswer:
        turn = Turn(
            0,
            question,
            rewrite.query,
            rewrite.method,
            result.answer,
            citation_records(result),
            time.time(),
        )
        stored = await asyncio.to_thread(self._store.append, conversation_id, turn)
        return ConversationAnswer(result, rewrite, conversation_id, stored.position)

    async def preview(
        self, collection: str, request: AnswerRequest, conversation_id: str | None = None
    ) -> Prepared:
        """Retrieve and pack as ``answer`` would, calling no model and storing nothing.

        A follow-up is rewritten by the rules even where ``answer`` would ask the model.
        """
        asked, _ = await self._prepare(collection, request, conversation_id, allow_model=False)
        return await asyncio.to_thread(self._answers.prepare, collection, asked)

    async def answer(
        self, collection: str, request: AnswerRequest, conversation_id: str | None = None
    ) -> ConversationAnswer:
        """Answer a question, rewritten against its earlier turns; keep the turn if asked to.

        Args:
            collection: The collection to answer from.
            request: The question; its ``history`` (when no conversation is named) is the
                earlier turns the question is rewritten against.
            conversation_id: The conversation whose stored turns come before the question;
                the new turn is stored in it.

        Raises:
            ConversationNotFound: no such conversation (404).
            InvalidRequest: the conversation is over another collection, or both a
                conversation and a history were sent.
        """
        asked, rewrite = await self._prepare(collection, request, conversation_id)
        result = await self._answers.answer(collection, asked)
        if conversation_id is None or rewrite is None:
            return ConversationAnswer(result, rewrite)
        return await self._store_turn(conversation_id, request.question, rewrite, result)

    async def open_stream(
        self, collection: str, request: AnswerRequest, conversation_id: str | None = None
    ) -> AsyncIterator[str | ConversationAnswer]:
        """Like ``answer``, streamed: text deltas, then one ``ConversationAnswer``.

        Errors before the first delta (an unknown conversation, a full queue) raise here.
        """
        asked, rewrite = await self._prepare(collection, request, conversation_id)
        events = await self._answers.open_stream(collection, asked)

        async def wrapped() -> AsyncIterator[str | ConversationAnswer]:
            async for item in events:
                if isinstance(item, str):
                    yield item
                elif conversation_id is None or rewrite is None:
                    yield ConversationAnswer(item, rewrite)
                else:
                    yield await self._store_turn(conversation_id, request.question, rewrite, item)

        return wrapped()
