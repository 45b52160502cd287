"""Conversations in PostgreSQL, beside the pgvector backend's tables.

Two tables of their own in the backend's schema (``RAG_VECTORSTORE__PGVECTOR__DB_SCHEMA``,
``ragserver`` by default), ``conversations`` and ``conversation_turns``, created if missing at
start under an advisory lock (several replicas may start together). They are not part of the
vector store's versioned schema (``vectorstores/pgvector_db.py``'s ``SCHEMA_VERSION``), so
adding them migrates nothing. Each write is one transaction; a turn's position is taken under
a row lock on its conversation, so two replicas appending at once cannot collide.

A deleted conversation's rows are gone for every reader at once; PostgreSQL itself keeps the
old row versions in its data folder until VACUUM reuses the space (as it does for deleted
documents), which ragserver does not control.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from psycopg import sql

from vectorstores.pgvector_db import Database

from .conversation_store import (
    TURN_COLUMNS,
    Conversation,
    Turn,
    citations_json,
    not_found,
    turn_from_row,
)

_TABLES = (
    "CREATE TABLE IF NOT EXISTS {conversations} (id text PRIMARY KEY, "
    "collection text NOT NULL, created_at double precision NOT NULL)",
    "CREATE INDEX IF NOT EXISTS conversations_by_collection ON {conversations} (collection)",
    "CREATE TABLE IF NOT EXISTS {turns} (conversation_id text NOT NULL "
    "REFERENCES {conversations} (id) ON DELETE CASCADE, position integer NOT NULL, "
    "question text NOT NULL, rewritten_query text NOT NULL, rewrite text NOT NULL, "
    "answer text NOT NULL, citations jsonb NOT NULL, created_at double precision NOT NULL, "
    "PRIMARY KEY (conversation_id, position))",
)


class PgConversationStore:
    """Conversations in the pgvector backend's database (see the module docstring)."""

    def __init__(self, url: str, schema: str, *, connect_timeout_s: int = 5) -> None:
        """Connect (a pool of at most two connections) and create the tables if missing.

        Raises:
            BackendUnavailable: the server cannot be reached or refuses the login.
            ConfigurationError: the URL is malformed.
        """
        self._db = Database(url, pool_size=2, connect_timeout_s=connect_timeout_s)
        self._names = {
            "conversations": sql.Identifier(schema, "conversations"),
            "turns": sql.Identifier(schema, "conversation_turns"),
        }
        self._prepare(schema)

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(**self._names)

    def _prepare(self, schema: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"{schema}.conversations"],
            )
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            for statement in _TABLES:
                conn.execute(self._sql(statement))

    def create(self, conversation_id: str, collection: str, created_at: float) -> None:
        """Record a new, empty conversation."""
        with self._db.connection() as conn:
            conn.execute(
                self._sql("INSERT INTO {conversations} VALUES (%s, %s, %s)"),
                [conversation_id, collection, created_at],
            )

    def get(self, conversation_id: str) -> Conversation:
        """The conversation with all its turns (one consistent snapshot)."""
        with self._db.transaction() as conn:
            head = conn.execute(
                self._sql("SELECT collection, created_at FROM {conversations} WHERE id = %s"),
                [conversation_id],
            ).fetchone()
            rows = conn.execute(
                self._sql(
                    f"SELECT {TURN_COLUMNS.replace('citations', 'citations::text')} FROM {{turns}} "
                    "WHERE conversation_id = %s ORDER BY position"
                ),
                [conversation_id],
            ).fetchall()
        if head is None:
            raise not_found(conversation_id)
        return Conversation(conversation_id, head[0], head[1], [turn_from_row(r) for r in rows])

    def append(self, conversation_id: str, turn: Turn) -> Turn:
        """Add a turn at the end, in one transaction holding the conversation's row lock."""
        with self._db.transaction() as conn:
            locked = conn.execute(
                self._sql("SELECT 1 FROM {conversations} WHERE id = %s FOR UPDATE"),
                [conversation_id],
            ).fetchone()
            if locked is None:
                raise not_found(conversation_id)
            row = conn.execute(
                self._sql(
                    "SELECT COALESCE(MAX(position), 0) FROM {turns} WHERE conversation_id = %s"
                ),
                [conversation_id],
            ).fetchone()
            position = int(row[0]) + 1 if row else 1
            values: list[Any] = [
                conversation_id,
                position,
                turn.question,
                turn.rewritten_query,
                turn.rewrite,
                turn.answer,
                citations_json(turn.citations),
                turn.created_at,
            ]
            conn.execute(
                self._sql("INSERT INTO {turns} VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s)"),
                values,
            )
        return dataclasses.replace(turn, position=position)

    def delete(self, conversation_id: str) -> bool:
        """Delete the conversation and its turns."""
        with self._db.connection() as conn:
            cursor = conn.execute(
                self._sql("DELETE FROM {conversations} WHERE id = %s"), [conversation_id]
            )
            return cursor.rowcount > 0

    def delete_collection(self, collection: str) -> int:
        """Delete every conversation of ``collection``."""
        with self._db.connection() as conn:
            cursor = conn.execute(
                self._sql("DELETE FROM {conversations} WHERE collection = %s"), [collection]
            )
            return int(cursor.rowcount)

    def close(self) -> None:
        """Close the idle connections."""
        self._db.close()
