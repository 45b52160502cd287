"""Durable jobs for the pgvector backend: job rows and staged bytes in PostgreSQL.

Two tables of their own in ragserver's schema: ``ingest_jobs`` (one row per job, with the
lease) and ``ingest_job_files`` (one row per file: its bytes as ``bytea`` until it has a
result, then the result as JSONB). The upload's job and every byte of its files commit in one
transaction before the 202. A claim is ``SELECT ... FOR UPDATE SKIP LOCKED``, so any number
of processes take jobs without ever taking the same one; leases are on the database's clock,
so hosts need not agree on the time.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from ingest.jobs import (
    IsDead,
    Job,
    JobOptions,
    JobState,
    PendingFile,
    StagedUpload,
    job_from_row,
    options_to_json,
    result_from_json,
    result_to_json,
)
from ingest.results import FileResult
from vectorstores.pgvector_db import Database

log = logging.getLogger(__name__)
NOW = "extract(epoch from clock_timestamp())"
TABLES = (
    "CREATE TABLE IF NOT EXISTS {s}.ingest_jobs (id text PRIMARY KEY, collection text NOT NULL, "
    "state text NOT NULL, files_total integer NOT NULL, chunks_embedded integer NOT NULL "
    "DEFAULT 0, options jsonb NOT NULL, trace_context jsonb, error text, worker text, "
    "lease_until double precision, attempts integer NOT NULL DEFAULT 0, "
    "created_at double precision NOT NULL, finished_at double precision, claimed_by text)",
    "CREATE INDEX IF NOT EXISTS ingest_jobs_unfinished ON {s}.ingest_jobs (created_at) "
    "WHERE state IN ('queued', 'running')",
    "CREATE TABLE IF NOT EXISTS {s}.ingest_job_files (job_id text NOT NULL REFERENCES "
    "{s}.ingest_jobs (id) ON DELETE CASCADE, idx integer NOT NULL, source text NOT NULL, "
    "content bytea, result jsonb, PRIMARY KEY (job_id, idx))",
)
_COLUMNS = (
    "id, collection, state, files_total, chunks_embedded, options, trace_context, error, "
    "attempts, created_at, finished_at, claimed_by"
)


class PgJobStore:
    """The ``JobStore`` of the pgvector backend (see the module docstring)."""

    def __init__(
        self,
        url: str,
        schema: str = "ragserver",
        *,
        pool_size: int = 4,
        connect_timeout_s: int = 5,
        keep_finished: int = 1000,
    ) -> None:
        """Connect and create the job tables when missing.

        Args:
            url: libpq URI of the database (the pgvector backend's).
            schema: ragserver's PostgreSQL schema.
            pool_size: Most connections open at once.
            connect_timeout_s: Seconds to wait for a connection.
            keep_finished: Finished jobs kept for ``/v1/jobs/{id}``.

        Raises:
            BackendUnavailable: the server cannot be reached.
        """
        self._db = Database(url, pool_size=pool_size, connect_timeout_s=connect_timeout_s)
        self._keep = keep_finished
        ident = sql.Identifier(schema)
        self._jobs = sql.Identifier(schema, "ingest_jobs")
        self._files = sql.Identifier(schema, "ingest_job_files")
        with self._db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 1))", [schema])
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
            for statement in TABLES:
                conn.execute(sql.SQL(statement).format(s=ident))

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(jobs=self._jobs, files=self._files, now=sql.SQL(NOW))

    def create(
        self,
        collection: str,
        files: Sequence[StagedUpload],
        options: JobOptions,
        trace_context: Mapping[str, str] | None = None,
    ) -> Job:
        """Insert the job and each file's bytes in one transaction; local files are deleted."""
        job_id = uuid.uuid4().hex
        trace = Jsonb(dict(trace_context)) if trace_context else None
        with self._db.transaction() as conn:
            conn.execute(
                self._q(
                    "INSERT INTO {jobs} (id, collection, state, files_total, options, "
                    "trace_context, created_at) VALUES (%s, %s, 'queued', %s, %s, %s, {now})"
                ),
                [job_id, collection, len(files), Jsonb(options_to_json(options)), trace],
            )
            for index, item in enumerate(files):
                content = item.path.read_bytes() if item.path is not None else None
                result = Jsonb(result_to_json(item.result)) if item.result else None
                conn.execute(
                    self._q(
                        "INSERT INTO {files} (job_id, idx, source, content, result) "
                        "VALUES (%s, %s, %s, %s, %s)"
                    ),
                    [job_id, index, item.source, content, result],
                )
        for item in files:
            if item.path is not None:
                item.path.unlink(missing_ok=True)
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        """The job with its results, or None."""
        with self._db.connection() as conn:
            row = conn.execute(
                self._q(f"SELECT {_COLUMNS} FROM {{jobs}} WHERE id = %s"), [job_id]
            ).fetchone()
            if row is None:
                return None
            results = [
                result_from_json(r[0])
                for r in conn.execute(
                    self._q(
                        "SELECT result FROM {files} WHERE job_id = %s AND result IS NOT NULL "
                        "ORDER BY idx"
                    ),
                    [job_id],
                )
            ]
        return job_from_row(row, results)

    def claim(self, worker: str, lease_s: float, is_dead: IsDead) -> Job | None:
        """``SELECT ... FOR UPDATE SKIP LOCKED`` the oldest job that is free to take."""
        with self._db.connection() as conn:
            owners = [
                r[0]
                for r in conn.execute(
                    self._q("SELECT DISTINCT worker FROM {jobs} WHERE state = 'running'")
                )
            ]
        dead = [owner for owner in owners if owner and is_dead(owner)]
        with self._db.transaction() as conn:
            row = conn.execute(
                self._q(
                    "WITH next AS (SELECT id FROM {jobs} WHERE state = 'queued' OR "
                    "(state = 'running' AND (lease_until IS NULL OR lease_until < {now} OR "
                    "worker = ANY(%s))) ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                    "UPDATE {jobs} j SET state = 'running', worker = %s, claimed_by = %s, "
                    "lease_until = {now} + %s, attempts = j.attempts + 1 FROM next "
                    "WHERE j.id = next.id RETURNING j.id"
                ),
                [dead, worker, worker, lease_s],
            ).fetchone()
        return self.get(str(row[0])) if row else None

    def _update(self, statement: str, params: Sequence[Any]) -> bool:
        with self._db.connection() as conn:
            return conn.execute(self._q(statement), params).rowcount == 1

    def heartbeat(self, job_id: str, worker: str, lease_s: float) -> bool:
        """Renew the lease."""
        return self._update(
            "UPDATE {jobs} SET lease_until = {now} + %s WHERE id = %s AND worker = %s "
            "AND state = 'running'",
            [lease_s, job_id, worker],
        )

    def pending(self, job_id: str) -> list[PendingFile]:
        """The files without a result."""
        with self._db.connection() as conn:
            rows = conn.execute(
                self._q(
                    "SELECT idx, source FROM {files} WHERE job_id = %s AND result IS NULL "
                    "ORDER BY idx"
                ),
                [job_id],
            ).fetchall()
        return [PendingFile(int(idx), str(source)) for idx, source in rows]

    def materialize(self, job_id: str, index: int, dest: Path) -> None:
        """Write the staged bytes to ``dest``."""
        with self._db.connection() as conn:
            row = conn.execute(
                self._q("SELECT content FROM {files} WHERE job_id = %s AND idx = %s"),
                [job_id, index],
            ).fetchone()
        dest.write_bytes(bytes(row[0]) if row and row[0] is not None else b"")

    def file_done(self, job_id: str, worker: str, index: int, result: FileResult) -> bool:
        """Record the result and drop the bytes, if the job is still the worker's."""
        with self._db.transaction() as conn:
            owned = conn.execute(
                self._q(
                    "SELECT 1 FROM {jobs} WHERE id = %s AND worker = %s AND state = 'running' "
                    "FOR UPDATE"
                ),
                [job_id, worker],
            ).fetchone()
            if owned is None:
                return False
            conn.execute(
                self._q(
                    "UPDATE {files} SET result = %s, content = NULL WHERE job_id = %s AND idx = %s"
                ),
                [Jsonb(result_to_json(result)), job_id, index],
            )
        return True

    def add_chunks(self, job_id: str, worker: str, n: int) -> None:
        """Count chunks embedded."""
        self._update(
            "UPDATE {jobs} SET chunks_embedded = chunks_embedded + %s WHERE id = %s "
            "AND worker = %s",
            [n, job_id, worker],
        )

    def finish(self, job_id: str, worker: str, state: JobState, error: str | None) -> bool:
        """End the job, drop its staged bytes, forget the oldest finished jobs."""
        with self._db.transaction() as conn:
            done = conn.execute(
                self._q(
                    "UPDATE {jobs} SET state = %s, error = %s, finished_at = {now}, "
                    "worker = NULL, lease_until = NULL WHERE id = %s AND worker = %s "
                    "AND state = 'running'"
                ),
                [state, error, job_id, worker],
            ).rowcount
            if done != 1:
                return False
            conn.execute(self._q("UPDATE {files} SET content = NULL WHERE job_id = %s"), [job_id])
            conn.execute(
                self._q(
                    "DELETE FROM {jobs} WHERE id IN (SELECT id FROM {jobs} WHERE finished_at "
                    "IS NOT NULL ORDER BY finished_at DESC OFFSET %s)"
                ),
                [self._keep],
            )
        return True

    def release(self, job_id: str, worker: str) -> bool:
        """Queue the job again."""
        return self._update(
            "UPDATE {jobs} SET state = 'queued', worker = NULL, lease_until = NULL "
            "WHERE id = %s AND worker = %s AND state = 'running'",
            [job_id, worker],
        )

    def drop_collection(self, collection: str) -> int:
        """Delete the collection's jobs with their staged bytes."""
        with self._db.connection() as conn:
            return conn.execute(
                self._q("DELETE FROM {jobs} WHERE collection = %s"), [collection]
            ).rowcount

    def close(self) -> None:
        """Close the pooled connections."""
        self._db.close()
