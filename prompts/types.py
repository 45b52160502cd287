"""The values prompts are built from: retrieved chunks, few-shot examples and chat history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from core.errors import InvalidRequest
from core.types import Chunk, Hit
from llms.base import Message


@dataclass(frozen=True)
class ContextChunk:
    """A retrieved chunk as the prompt presents it.

    Attributes:
        chunk: The stored chunk (its id, document id and metadata accessors).
        text: The text the prompt shows; shorter than ``chunk.text`` when ``truncated``.
        truncated: The text was cut at a sentence boundary to fit the context window.
    """

    chunk: Chunk
    text: str
    truncated: bool = False

    @property
    def id(self) -> str:
        """The chunk id (``"{document_id}:{position:05d}"``), reported back in the budget."""
        return self.chunk.id

    @classmethod
    def from_hit(cls, hit: Hit | Chunk | ContextChunk) -> ContextChunk:
        """Take a search ``Hit`` (or a bare ``Chunk``) as prompt context."""
        if isinstance(hit, ContextChunk):
            return hit
        chunk = hit.chunk if isinstance(hit, Hit) else hit
        return cls(chunk=chunk, text=chunk.text)

    def cut(self, text: str) -> ContextChunk:
        """Return this chunk with its text replaced by a cut ``text``."""
        return replace(self, text=text, truncated=True)


@dataclass(frozen=True)
class Example:
    """One few-shot example: a question and a model answer to it."""

    question: str
    answer: str

    @classmethod
    def parse(cls, value: Example | Mapping[str, Any], where: str = "example") -> Example:
        """Accept an ``Example`` or a mapping with string ``question`` and ``answer``.

        Raises:
            InvalidRequest: either is missing, not a string or empty.
        """
        if isinstance(value, Example):
            return value
        if not isinstance(value, Mapping):
            raise InvalidRequest(f"{where} must be an object with 'question' and 'answer'")
        question, answer = value.get("question"), value.get("answer")
        if not isinstance(question, str) or not isinstance(answer, str):
            raise InvalidRequest(f"{where} needs string 'question' and 'answer' fields")
        if not question.strip() or not answer.strip():
            raise InvalidRequest(f"{where} has an empty 'question' or 'answer'")
        return cls(question.strip(), answer.strip())


def parse_examples(values: Sequence[Example | Mapping[str, Any]]) -> list[Example]:
    """Validate a request's few-shot examples (see ``Example.parse``)."""
    return [Example.parse(v, f"examples[{i}]") for i, v in enumerate(values)]


def parse_history(values: Sequence[Message | Mapping[str, Any]]) -> list[Message]:
    """Validate prior chat turns: only ``user`` and ``assistant`` messages with string content.

    Raises:
        InvalidRequest: another role (a client may not inject system messages), or content
            that is not a string.
    """
    history: list[Message] = []
    for i, m in enumerate(values):
        role, content = m.get("role"), m.get("content")
        if role == "user" or role == "assistant":
            if not isinstance(content, str):
                raise InvalidRequest(f"history[{i}].content must be a string")
            history.append(Message(role=role, content=content))
        else:
            raise InvalidRequest(
                f"history[{i}].role is {role!r}; history holds only 'user' and 'assistant' "
                "turns (the system prompt comes from the template)"
            )
    return history
