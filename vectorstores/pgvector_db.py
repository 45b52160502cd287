"""Connections to PostgreSQL for the pgvector backend: a small pool, errors, the schema.

* **Connections.** ``Database`` keeps at most ``pool_size`` autocommit connections open per
  process (a caller waits up to ``connect_timeout_s`` for a busy one, then gets a 503
  ``Overloaded``), reuses idle ones and opens a new one whenever none is idle; each one taken
  from the pool is checked with an empty query first, so connections that died with a
  restarted server are dropped instead of failing a request. A request that needs a connection
  while PostgreSQL is down fails at once (or after ``connect_timeout_s`` for an unanswering
  host) with ``BackendUnavailable`` (503) naming the server and database, and the first
  request after PostgreSQL is back connects again, without restarting ragserver.
* **Errors.** A failed connection becomes one line that names the host, port, database and
  user (never the password) and says what to do: a wrong password, an unknown database, a
  server that does not answer. Connection errors during a query (``OperationalError``) are
  ``BackendUnavailable`` too.
* **Schema.** ``prepare`` runs at start, under an advisory lock so several replicas starting
  together do not race: it makes sure the ``vector`` extension exists (creating it when the
  user may), creates the schema's tables on first use and records ``SCHEMA_VERSION`` in
  ``<schema>.meta``. An older schema is migrated in the same transaction (version 2 added
  ``collections.version``); a database whose schema has a newer version is refused.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from core.errors import BackendUnavailable, ConfigurationError, Overloaded

log = logging.getLogger(__name__)

#: Version of the tables this code reads and writes; bump it with a migration in ``prepare``.
SCHEMA_VERSION = 2
URL_SETTING = "RAG_VECTORSTORE__PGVECTOR__URL"
_UNREACHABLE = (
    "connection refused",
    "no such file or directory",
    "could not translate host name",
    "name or service not known",
    "timeout expired",
    "server closed the connection",
    "the database system is shutting down",
    "the database system is starting up",
    "network is unreachable",
    "no route to host",
)


@dataclass(frozen=True)
class Target:
    """Where a libpq URL points, for messages (the password is never kept)."""

    host: str
    port: str
    dbname: str
    user: str

    @classmethod
    def parse(cls, url: str) -> Target:
        """Read host, port, database and user from a libpq URI or key=value string.

        Raises:
            ConfigurationError: the URL is empty or not a valid libpq connection string.
        """
        if not url:
            raise ConfigurationError(
                f"the pgvector backend needs {URL_SETTING}, e.g. "
                "postgresql://user:password@host:5432/ragserver"
            )
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            reason = str(exc).strip().splitlines()[0]
            raise ConfigurationError(
                f"{URL_SETTING} is not a valid libpq URL ({reason}); use "
                "postgresql://user:password@host:5432/ragserver"
            ) from exc
        user = str(params.get("user") or "")
        return cls(
            host=str(params.get("host") or params.get("hostaddr") or ""),
            port=str(params.get("port") or "5432"),
            dbname=str(params.get("dbname") or user or "(the user's name)"),
            user=user or "(the OS user)",
        )

    def __str__(self) -> str:
        """Describe the server and database, e.g. ``PostgreSQL at db:5432, database 'rag'``."""
        if not self.host:
            where = f"on the default local socket (port {self.port})"
        elif self.host.startswith("/"):
            where = f"on socket directory {self.host} (port {self.port})"
        else:
            where = f"at {self.host}:{self.port}"
        return f"PostgreSQL {where}, database '{self.dbname}'"


def _reason(exc: BaseException) -> str:
    """The useful part of a libpq error: its first line, without the connection preamble."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if "failed: " in text:
        text = text.rsplit("failed: ", 1)[1]
    return " ".join(text.replace("FATAL:", "").split()) or type(exc).__name__


def connect_error(target: Target, exc: BaseException) -> BackendUnavailable:
    """Turn a failed connection into one line naming the server and what to do."""
    reason = _reason(exc)
    low = reason.lower()
    if "password" in low or "authentication failed" in low or "role" in low:
        message = (
            f"{target} refused user '{target.user}' ({reason}): check the user name and "
            f"password in {URL_SETTING}"
        )
    elif "database" in low and "does not exist" in low:
        message = (
            f"{target} has no database '{target.dbname}': create it (createdb "
            f"{target.dbname}) or fix the database name in {URL_SETTING}"
        )
    elif any(marker in low for marker in _UNREACHABLE):
        message = (
            f"{target} is not reachable ({reason}): start PostgreSQL, or fix the host and "
            f"port in {URL_SETTING}"
        )
    else:
        message = f"cannot connect to {target} ({reason}): check {URL_SETTING}"
    return BackendUnavailable(message, {"host": target.host, "database": target.dbname})


class Database:
    """A small pool of connections to one database (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 8,
        connect_timeout_s: int = 5,
        session: Mapping[str, str] | None = None,
    ) -> None:
        """Remember where to connect; nothing is opened yet.

        Args:
            url: libpq URI or key=value connection string.
            pool_size: Most connections open at once; idle ones are kept for reuse.
            connect_timeout_s: Seconds a new connection may take, and the longest a caller
                waits for one of ``pool_size`` busy connections.
            session: Settings applied to each new connection (``hnsw.ef_search``).

        Raises:
            ConfigurationError: the URL is empty or malformed.
        """
        self.target = Target.parse(url)
        self._url = url
        self._pool_size = pool_size
        self._timeout = connect_timeout_s
        self._session = dict(session or {})
        self._idle: list[psycopg.Connection[Any]] = []
        self._slots = threading.BoundedSemaphore(pool_size)
        self._lock = threading.Lock()
        self._closed = False

    def connect(self, *, vector_type: bool = True) -> psycopg.Connection[Any]:
        """Open a new autocommit connection (with the ``vector`` type registered).

        Raises:
            BackendUnavailable: the server cannot be reached or refuses the login.
        """
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=self._timeout)
        except psycopg.OperationalError as exc:
            raise connect_error(self.target, exc) from exc
        if vector_type:
            from pgvector.psycopg import register_vector

            try:
                register_vector(conn)
                for name, value in self._session.items():
                    conn.execute("SELECT set_config(%s, %s, false)", [name, value])
            except psycopg.OperationalError as exc:
                conn.close()
                raise connect_error(self.target, exc) from exc
            except Exception:
                conn.close()
                raise
        return conn

    def _checkout(self) -> psycopg.Connection[Any]:
        if not self._slots.acquire(timeout=self._timeout):
            raise Overloaded(
                f"all {self._pool_size} connections to {self.target} stayed busy for "
                f"{self._timeout} s; retry shortly, or raise RAG_VECTORSTORE__PGVECTOR__POOL_SIZE"
            )
        try:
            return self._open_or_reuse()
        except BaseException:
            self._slots.release()
            raise

    def _open_or_reuse(self) -> psycopg.Connection[Any]:
        while True:
            with self._lock:
                if self._closed:
                    raise BackendUnavailable(f"the connections to {self.target} are closed")
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self.connect()
            try:
                conn.execute("")  # a dead connection fails here, not in the caller's query
                return conn
            except psycopg.Error:
                conn.close()

    def _checkin(self, conn: psycopg.Connection[Any]) -> None:
        healthy = not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
        try:
            with self._lock:
                if healthy and not self._closed:
                    self._idle.append(conn)
                    return
            conn.close()
        finally:
            self._slots.release()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """Yield a pooled autocommit connection (each statement its own transaction).

        Raises:
            BackendUnavailable: the server is down or the connection broke.
        """
        conn = self._checkout()
        try:
            yield conn
        except psycopg.OperationalError as exc:
            raise BackendUnavailable(
                f"{self.target} is not available ({_reason(exc)}); retry once it is back",
                {"host": self.target.host, "database": self.target.dbname},
            ) from exc
        finally:
            self._checkin(conn)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """Yield a pooled connection inside a transaction, committed when the block ends.

        Raises:
            BackendUnavailable: the server is down or the connection broke.
        """
        with self.connection() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        """Close every idle connection; connections in use close when handed back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _ensure_extension(conn: psycopg.Connection[Any], target: Target) -> None:
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        return
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    if not available:
        raise ConfigurationError(
            f"{target} has no pgvector: install the extension on the server (or use the "
            "pgvector/pgvector:pg16 image), then run CREATE EXTENSION vector; in the database",
            {"host": target.host, "database": target.dbname},
        )
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ConfigurationError(
            f"{target} lacks the vector extension and user '{target.user}' may not create "
            f"it: run CREATE EXTENSION vector; in database '{target.dbname}' as a superuser",
            {"host": target.host, "database": target.dbname},
        ) from exc
    log.info("created the vector extension in %s", target)


def _create_tables(conn: psycopg.Connection[Any], schema: str) -> None:
    ident = sql.Identifier(schema)
    for statement in (
        "CREATE TABLE {s}.collections (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, "
        "embedding_model text NOT NULL, dimension integer NOT NULL, "
        "created_at double precision NOT NULL, version bigint NOT NULL DEFAULT 0)",
        "CREATE TABLE {s}.documents (collection_id bigint NOT NULL "
        "REFERENCES {s}.collections (id) ON DELETE CASCADE, id text NOT NULL, "
        "source text NOT NULL, content_hash text NOT NULL, chunk_count integer NOT NULL, "
        "metadata jsonb NOT NULL, created_at double precision NOT NULL, "
        "updated_at double precision NOT NULL, PRIMARY KEY (collection_id, id))",
    ):
        conn.execute(sql.SQL(statement).format(s=ident))


def _migrate(conn: psycopg.Connection[Any], schema: str, found: int) -> None:
    """Bring a schema of an older ragserver up to ``SCHEMA_VERSION`` (inside ``prepare``)."""
    ident = sql.Identifier(schema)
    if found < 2:  # version 2: the per-collection write counter read by keyword indexes
        conn.execute(
            sql.SQL(
                "ALTER TABLE {s}.collections ADD COLUMN IF NOT EXISTS version bigint NOT NULL "
                "DEFAULT 0"
            ).format(s=ident)
        )
    conn.execute(
        sql.SQL("UPDATE {} SET value = %s WHERE key = 'schema_version'").format(
            sql.Identifier(schema, "meta")
        ),
        [str(SCHEMA_VERSION)],
    )
    log.info("schema '%s' migrated from version %d to %d", schema, found, SCHEMA_VERSION)


def prepare(db: Database, schema: str) -> None:
    """Make the database ready: the extension, the schema's tables, the version check.

    Args:
        db: The database.
        schema: Name of the PostgreSQL schema holding ragserver's tables.

    Raises:
        BackendUnavailable: the server cannot be reached or refuses the login.
        ConfigurationError: no usable ``vector`` extension, no right to create the schema,
            or a schema written by a newer ragserver.
    """
    target = db.target
    conn = db.connect(vector_type=False)
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [schema])
            _ensure_extension(conn, target)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            meta = sql.Identifier(schema, "meta")
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value text NOT NULL)"
                ).format(meta)
            )
            row = conn.execute(
                sql.SQL("SELECT value FROM {} WHERE key = 'schema_version'").format(meta)
            ).fetchone()
            if row is None:
                _create_tables(conn, schema)
                conn.execute(
                    sql.SQL("INSERT INTO {} VALUES ('schema_version', %s)").format(meta),
                    [str(SCHEMA_VERSION)],
                )
            elif int(row[0]) < SCHEMA_VERSION:
                _migrate(conn, schema, int(row[0]))
            elif int(row[0]) > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"{target}: schema '{schema}' holds ragserver schema version {row[0]}, "
                    f"newer than version {SCHEMA_VERSION} that this ragserver understands; "
                    "upgrade ragserver, or set RAG_VECTORSTORE__PGVECTOR__DB_SCHEMA to "
                    "another schema",
                    {"schema_version": int(row[0]), "supported": SCHEMA_VERSION},
                )
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ConfigurationError(
            f"{target}: user '{target.user}' may not create ragserver's tables "
            f"({_reason(exc)}); grant it CREATE on the database, or create schema "
            f"'{schema}' owned by it",
            {"host": target.host, "database": target.dbname},
        ) from exc
    except psycopg.OperationalError as exc:
        raise connect_error(target, exc) from exc
    finally:
        conn.close()
