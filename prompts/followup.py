"""The prompt that asks a capable model to rewrite a follow-up into a standalone query.

Used before retrieval when the answering model is not the bundled SmolLM2-135M (too small to
rewrite reliably; ``retrieval/followup.py``'s deterministic rewrite serves it instead).
"""

from __future__ import annotations

from collections.abc import Sequence

from llms.base import Message

REWRITE_SYSTEM = (
    "You rewrite the user's last question into one standalone search query for a document "
    "search engine. Replace pronouns and references such as 'it', 'that one' or 'the second "
    "one' with what they refer to in the conversation, keep the user's own words otherwise, "
    "and add nothing the conversation does not say. Reply with the query alone, on one line, "
    "without quotes or explanations."
)
MAX_ANSWER_CHARS = 600
"""How much of each earlier answer the rewrite prompt quotes."""
MAX_QUERY_CHARS = 500
"""A longer reply is not a query; the deterministic rewrite is used instead."""


def rewrite_messages(question: str, history: Sequence[tuple[str, str]]) -> list[Message]:
    """The chat messages asking for the standalone query.

    Args:
        question: The follow-up as asked.
        history: Earlier ``(question, answer)`` pairs, oldest first.

    Returns:
        A system message with the instructions and one user message holding the conversation
        and the question to rewrite.
    """
    lines = []
    for asked, answered in history:
        lines.append(f"User: {asked.strip()}")
        short = " ".join(answered.split())
        if len(short) > MAX_ANSWER_CHARS:
            short = short[:MAX_ANSWER_CHARS].rsplit(" ", 1)[0] + " ..."
        lines.append(f"Assistant: {short}")
    conversation = "\n".join(lines)
    user = (
        f"Conversation:\n{conversation}\n\nLast question: {question.strip()}\n\n"
        "Standalone search query:"
    )
    return [{"role": "system", "content": REWRITE_SYSTEM}, {"role": "user", "content": user}]


def clean_rewrite(text: str) -> str | None:
    """The query in a model's reply: its first non-empty line without quotes or a label.

    Returns:
        The query, or None when the reply holds none (empty, or too long to be a query).
    """
    for line in text.strip().splitlines():
        query = line.strip().strip("\"'`").strip()
        for label in ("standalone search query:", "search query:", "query:"):
            if query.lower().startswith(label):
                query = query[len(label) :].strip().strip("\"'`").strip()
        if query:
            return query if len(query) <= MAX_QUERY_CHARS else None
    return None
