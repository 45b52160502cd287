"""How a pgvector store object stays bound to its collection across replicas.

``BoundCollection`` is the base of ``PgVectorStore``: it runs each operation on a pooled
connection, moves the collection's ``version`` inside writes, and follows the collection by
name when another replica deleted it (and perhaps created one of the same name): see ``_run``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from core.errors import CollectionNotFound
from vectorstores.pgvector_db import Database

_T = TypeVar("_T")
Conn = psycopg.Connection[Any]


class _Gone(Exception):
    """The collection's row is gone: deleted, perhaps recreated, by another replica."""


class BoundCollection:
    """A collection's name, model and dimension, and where its rows are now."""

    def __init__(
        self, db: Database, schema: str, collection_id: int, info: tuple[str, str, int]
    ) -> None:
        """Bind to the collection ``collection_id`` (its chunk table is ``chunks_<id>``).

        Args:
            db: The database.
            schema: The schema of ragserver's tables.
            collection_id: The collection's row id.
            info: Name, embedding model and dimension.
        """
        self._db = db
        self._id = collection_id
        self.name, self.embedding_model, self.dimension = info
        self._schema = schema
        self._chunks = sql.Identifier(schema, f"chunks_{collection_id}")
        self._docs = sql.Identifier(schema, "documents")
        self._collections = sql.Identifier(schema, "collections")

    def _run(self, work: Callable[[Conn], _T], *, read_only: bool = False) -> _T:
        """Run ``work`` in a transaction, or for a single read on an autocommit connection.

        When the collection's row or table is gone (another replica deleted it, and maybe
        created a collection of the same name since), the name is looked up again: if it
        names a collection of the same model and dimension, this object follows it and the
        work runs once more, so a replica never keeps serving 404 for a recreated collection.
        """
        for attempt in range(2):
            try:
                with self._db.connection() if read_only else self._db.transaction() as conn:
                    return work(conn)
            except (
                _Gone,
                psycopg.errors.UndefinedTable,
                psycopg.errors.ForeignKeyViolation,
            ) as exc:
                if attempt or not self._rebind():
                    raise CollectionNotFound(
                        f"collection '{self.name}' was deleted", {"name": self.name}
                    ) from exc
        raise AssertionError("unreachable")

    def _rebind(self) -> bool:
        """Follow the collection now named ``self.name``; False if none (or an unlike one)."""
        with self._db.connection() as conn:
            row = conn.execute(
                sql.SQL("SELECT id, embedding_model, dimension FROM {} WHERE name = %s").format(
                    self._collections
                ),
                [self.name],
            ).fetchone()
        if row is None or int(row[0]) == self._id:
            return False
        if (str(row[1]), int(row[2])) != (self.embedding_model, self.dimension):
            return False  # recreated for another model: the service must open it anew
        self._id = int(row[0])
        self._chunks = sql.Identifier(self._schema, f"chunks_{self._id}")
        return True

    def _bump(self, conn: Conn) -> None:
        """Move the collection's version, in the write's own transaction (see ``version``)."""
        row = conn.execute(
            sql.SQL("UPDATE {} SET version = version + 1 WHERE id = %s RETURNING version").format(
                self._collections
            ),
            [self._id],
        ).fetchone()
        if row is None:
            raise _Gone

    def version(self) -> str:
        """Return ``<collection id>:<write counter>``: one indexed row, moved by every write."""

        def read(conn: Conn) -> str:
            row = conn.execute(
                sql.SQL("SELECT version FROM {} WHERE id = %s").format(self._collections),
                [self._id],
            ).fetchone()
            if row is None:
                raise _Gone
            return f"{self._id}:{int(row[0])}"

        return self._run(read, read_only=True)

    def _rows(
        self, template: str, params: list[Any], *parts: sql.Composable
    ) -> list[tuple[Any, ...]]:
        """Run one read; the template's first ``{}`` is the chunk table, the others ``parts``."""

        def read(conn: Conn) -> list[tuple[Any, ...]]:
            # Composed here, so that after a rebind the retry reads the new table.
            statement = sql.SQL(template).format(self._chunks, *parts)
            return conn.execute(statement, params).fetchall()

        return self._run(read, read_only=True)

    def _read_documents(self, read: Callable[[Conn], _T]) -> _T:
        """Read document records; an empty answer checks that the collection still exists.

        Records hang off the collection id: after another replica deleted (and maybe
        recreated) the collection, the old id finds nothing instead of failing.
        """

        def checked(conn: Conn) -> _T:
            result = read(conn)
            if not result:
                alive = conn.execute(
                    sql.SQL("SELECT 1 FROM {} WHERE id = %s").format(self._collections),
                    [self._id],
                ).fetchone()
                if alive is None:
                    raise _Gone
            return result

        return self._run(checked, read_only=True)
