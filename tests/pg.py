"""A real PostgreSQL 16 + pgvector for the tests, from the ``pgserver`` wheel.

``pgserver`` runs ``initdb`` and ``pg_ctl`` on a data folder (as a ``pgserver`` user it makes
when the tests run as root) and listens on a unix socket inside that folder only, with trust
authentication; roles that need a password get their own ``pg_hba.conf`` line.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql


def unique(prefix: str) -> str:
    """A fresh lower-case name for a database, role or schema."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class PgCluster:
    """One PostgreSQL server on a data folder of its own; stop and start it at will."""

    def __init__(self) -> None:
        import pgserver

        # Not under pytest's tmp folders: those are 0700, and the server may run as another
        # user (pgserver's own, when the tests run as root).
        self._folder = Path(tempfile.mkdtemp(prefix="ragserver-pg-"))
        self._folder.chmod(0o755)
        self.pgdata = pgdata = self._folder / "pg"
        self.server = pgserver.get_server(pgdata, cleanup_mode="delete")

    @property
    def socket_dir(self) -> str:
        """The folder of the server's unix socket (the URL's ``?host=``)."""
        return str(self.server.get_postmaster_info().socket_dir)

    def url(self, database: str = "postgres", user: str = "postgres", password: str = "") -> str:
        """A libpq URI over the unix socket."""
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@/{database}?host={self.socket_dir}"

    def admin(self, database: str = "postgres") -> psycopg.Connection[Any]:
        """A superuser autocommit connection."""
        return psycopg.connect(self.url(database), autocommit=True)

    def create_database(self, owner: str = "postgres", extension: bool = True) -> str:
        """Create a fresh database (with the vector extension unless told not to)."""
        name = unique("db")
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(owner)
                )
            )
        if extension:
            with self.admin(name) as conn:
                conn.execute("CREATE EXTENSION vector")
        return name

    def create_role(self, password: str | None = None) -> str:
        """Create a login role without superuser rights; with a password, the server asks it."""
        name = unique("role")
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(password)
                )
            )
            if password is not None:
                hba = self.pgdata / "pg_hba.conf"
                hba.write_text(f"local all {name} scram-sha-256\n" + hba.read_text())
                conn.execute("SELECT pg_reload_conf()")
        if password is not None:
            self._wait_for_password_rule(name)
        return name

    def _wait_for_password_rule(self, role: str) -> None:
        """Return once the server asks ``role`` for its password (the reload is asynchronous)."""
        deadline = time.monotonic() + 30  # a safety net; the reload takes milliseconds
        while True:
            try:
                psycopg.connect(self.url(user=role), connect_timeout=5).close()
            except psycopg.OperationalError as exc:
                if "password" in str(exc):
                    return
                raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not reload pg_hba.conf for {role}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected)."""
        import pgserver

        pgserver.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        """Start the stopped server again, on the same socket."""
        self.server.ensure_postgres_running()

    def close(self) -> None:
        """Stop the server and delete its folder."""
        try:
            self.server.cleanup()
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)
