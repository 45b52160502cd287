"""API models of conversations (``/v1/conversations``) and the follow-up facts of an answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RewriteMethod = Literal["none", "model", "rules"]


class FollowupFacts(BaseModel):
    """What a follow-up question was searched as (``/query`` and the chat endpoint)."""

    rewritten_query: str | None = Field(
        None,
        description="The standalone query retrieval used, when the question had earlier turns "
        "(a conversation's, or the chat messages before it); the question itself when it "
        "needed no rewrite.",
    )
    rewrite: RewriteMethod | None = Field(
        None,
        description="How rewritten_query was made: none (the question as asked), model (the "
        "answering model), rules (the deterministic rewrite).",
    )


class ConversationTurnFacts(FollowupFacts):
    """The conversation an answer was stored in (``/query`` with a ``conversation_id``)."""

    conversation_id: str | None = Field(None, description="The conversation of this turn.")
    turn: int | None = Field(None, description="The turn's position in it (1 is the first).")


class ConversationCreate(BaseModel):
    """Start a conversation over a collection."""

    model_config = ConfigDict(extra="forbid")

    collection: str = Field("default", min_length=1, description="The collection it asks.")


class TurnCitation(BaseModel):
    """A citation as a turn keeps it: where it points, not the quoted passage."""

    model_config = ConfigDict(extra="allow")

    number: int
    chunk_id: str
    document_id: str
    source: str = Field("", description="The cited document's source (file name or path).")
    page: int | None = None
    heading_path: str = ""
    score: float = 0.0
    cited: bool = False


class TurnOut(BaseModel):
    """One question and its answer."""

    position: int = Field(description="1 for the first turn.")
    question: str = Field(description="The question as asked.")
    rewritten_query: str = Field(description="The standalone query it was searched as.")
    rewrite: RewriteMethod
    answer: str
    citations: list[TurnCitation]
    created_at: float


class ConversationOut(BaseModel):
    """A conversation with its turns, oldest first."""

    id: str
    collection: str
    created_at: float
    turns: list[TurnOut] = Field(default_factory=list)
