"""Where conversations and their turns are kept: the contract, and the SQLite file.

A conversation belongs to one collection and holds its turns in order: the question as asked,
the standalone query it was searched with (and how that was made), the answer and its
citations (numbers, sources, headings, scores; not the quoted passage text, so that deleting a
document leaves no copy of its passages here). With the pgvector backend the turns live in the
same PostgreSQL database (``app/services/conversation_pg.py``); with every other backend in
``RAG_DATA_DIR/conversations.sqlite3``: WAL, full fsync, each write one transaction, and
``secure_delete`` plus a truncating checkpoint after a delete, so a deleted conversation's
text leaves the file's bytes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.errors import ConversationNotFound

FILE_NAME = "conversations.sqlite3"


@dataclass(frozen=True)
class Turn:
    """One question and its answer in a conversation.

    Attributes:
        position: 1 for the first turn, then 2, 3, ...
        question: The question as the user asked it.
        rewritten_query: The standalone query it was searched with.
        rewrite: How that query was made: ``none`` (the question itself, no context needed
            or no earlier turn), ``model`` (the answering model) or ``rules`` (the
            deterministic rewrite of ``retrieval/followup.py``).
        answer: The answer text.
        citations: The answer's citations, without their quoted text.
        created_at: Seconds since the epoch.
    """

    position: int
    question: str
    rewritten_query: str
    rewrite: str
    answer: str
    citations: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = 0.0


@dataclass(frozen=True)
class Conversation:
    """A conversation and its turns, oldest first."""

    id: str
    collection: str
    created_at: float
    turns: list[Turn] = field(default_factory=list)


class ConversationStore(Protocol):
    """Keeps conversations; every method is safe to call from several threads.

    Unknown ids raise ``ConversationNotFound`` (``get``, ``append``) or return False
    (``delete``). Turn positions are assigned by ``append``, one more than the last.
    """

    def create(self, conversation_id: str, collection: str, created_at: float) -> None:
        """Record a new, empty conversation."""

    def get(self, conversation_id: str) -> Conversation:
        """The conversation with all its turns."""

    def append(self, conversation_id: str, turn: Turn) -> Turn:
        """Add a turn at the end (its ``position`` is ignored); return it as stored."""

    def delete(self, conversation_id: str) -> bool:
        """Delete a conversation and its turns, leaving no copy of their text; False if absent."""

    def delete_collection(self, collection: str) -> int:
        """Delete every conversation of a collection; return how many."""

    def close(self) -> None:
        """Release the connection."""


def not_found(conversation_id: str) -> ConversationNotFound:
    """The 404 for an unknown conversation id, saying what to do."""
    return ConversationNotFound(
        f"conversation '{conversation_id}' does not exist (it may have been deleted); "
        "create one with POST /v1/conversations and send its id",
        {"conversation_id": conversation_id},
    )


def citations_json(citations: list[dict[str, Any]]) -> str:
    """The citations as stored: JSON text."""
    return json.dumps(citations, ensure_ascii=False, separators=(",", ":"))


SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_collection ON conversations (collection);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    question TEXT NOT NULL,
    rewritten_query TEXT NOT NULL,
    rewrite TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (conversation_id, position)
);
"""
TURN_COLUMNS = "position, question, rewritten_query, rewrite, answer, citations, created_at"


def turn_from_row(row: tuple[Any, ...]) -> Turn:
    """A ``Turn`` from a row of ``TURN_COLUMNS`` (both backends select the same columns)."""
    position, question, query, rewrite, answer, citations, created_at = row
    return Turn(
        int(position),
        str(question),
        str(query),
        str(rewrite),
        str(answer),
        json.loads(citations),
        float(created_at),
    )


class SQLiteConversationStore:
    """Conversations in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        """Open (or create) the file and its tables."""
        from vectorstores.faiss_sqlite import connect

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = connect(path)
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()

    def _write(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[sqlite3.Cursor]:
        from vectorstores.faiss_sqlite import transaction

        with self._lock, transaction(self._conn) as conn:
            return [conn.execute(sql, params) for sql, params in statements]

    def create(self, conversation_id: str, collection: str, created_at: float) -> None:
        """Record a new, empty conversation."""
        values = (conversation_id, collection, created_at)
        self._write([("INSERT INTO conversations VALUES (?, ?, ?)", values)])

    def get(self, conversation_id: str) -> Conversation:
        """The conversation with all its turns."""
        with self._lock:
            head = self._conn.execute(
                "SELECT collection, created_at FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            rows = self._conn.execute(
                f"SELECT {TURN_COLUMNS} FROM turns WHERE conversation_id = ? ORDER BY position",
                (conversation_id,),
            ).fetchall()
        if head is None:
            raise not_found(conversation_id)
        return Conversation(conversation_id, head[0], head[1], [turn_from_row(r) for r in rows])

    def append(self, conversation_id: str, turn: Turn) -> Turn:
        """Add a turn at the end, in one transaction."""
        from vectorstores.faiss_sqlite import transaction

        with self._lock, transaction(self._conn) as conn:
            if not conn.execute(
                "SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone():
                raise not_found(conversation_id)
            (last,) = conn.execute(
                "SELECT COALESCE(MAX(position), 0) FROM turns WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
            stored = Turn(last + 1, *_fields_after_position(turn))
            conn.execute(
                "INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, *_row_of(stored)),
            )
        return stored

    def delete(self, conversation_id: str) -> bool:
        """Delete the conversation and its turns; the freed pages are zeroed, the WAL emptied."""
        (cursor,) = self._write([("DELETE FROM conversations WHERE id = ?", (conversation_id,))])
        self._purge()
        return cursor.rowcount > 0

    def delete_collection(self, collection: str) -> int:
        """Delete every conversation of ``collection``."""
        (cursor,) = self._write([("DELETE FROM conversations WHERE collection = ?", (collection,))])
        self._purge()
        return int(cursor.rowcount)

    def _purge(self) -> None:
        from vectorstores.faiss_sqlite import checkpoint_truncate

        with self._lock:
            checkpoint_truncate(self._conn)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def _fields_after_position(turn: Turn) -> tuple[Any, ...]:
    return (
        turn.question,
        turn.rewritten_query,
        turn.rewrite,
        turn.answer,
        turn.citations,
        turn.created_at,
    )


def _row_of(turn: Turn) -> tuple[Any, ...]:
    """A turn as the values of ``TURN_COLUMNS``."""
    return (
        turn.position,
        turn.question,
        turn.rewritten_query,
        turn.rewrite,
        turn.answer,
        citations_json(turn.citations),
        turn.created_at,
    )
