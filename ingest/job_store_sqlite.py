"""Durable jobs for the embedded backends: a SQLite file and staged files under the data dir.

``<data_dir>/jobs/jobs.sqlite3`` (WAL, ``synchronous=FULL``) holds the job rows and one row
per file; each staged file is ``<data_dir>/jobs/staged/<job id>/<index>``, fsynced and
renamed into place (and its folder fsynced) before the job row commits, so an acknowledged
upload survives a crash or a power cut. A claim runs in a ``BEGIN IMMEDIATE`` transaction,
so processes sharing the data directory never take the same job.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

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

log = logging.getLogger(__name__)
ORPHAN_AGE_S = 3600.0
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, collection TEXT NOT NULL, "
    "state TEXT NOT NULL, files_total INTEGER NOT NULL, chunks_embedded INTEGER NOT NULL "
    "DEFAULT 0, options TEXT NOT NULL, trace_context TEXT, error TEXT, worker TEXT, "
    "lease_until REAL, attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, "
    "finished_at REAL, claimed_by TEXT)",
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created_at)",
    "CREATE TABLE IF NOT EXISTS job_files (job_id TEXT NOT NULL REFERENCES jobs (id) "
    "ON DELETE CASCADE, idx INTEGER NOT NULL, source TEXT NOT NULL, result TEXT, "
    "PRIMARY KEY (job_id, idx))",
)
_COLUMNS = (
    "id, collection, state, files_total, chunks_embedded, options, trace_context, error, "
    "attempts, created_at, finished_at, claimed_by"
)


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's entry to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _result_text(result: FileResult | None) -> str | None:
    return None if result is None else json.dumps(result_to_json(result))


class SqliteJobStore:
    """The ``JobStore`` of the embedded backends (see the module docstring)."""

    def __init__(self, folder: Path, keep_finished: int = 1000) -> None:
        """Open (or create) the job database in ``folder``.

        Args:
            folder: ``<data_dir>/jobs``.
            keep_finished: Finished jobs kept for ``/v1/jobs/{id}``; older ones are forgotten.
        """
        self._folder = folder
        self._staged = folder / "staged"
        self._staged.mkdir(parents=True, exist_ok=True)
        self._path = folder / "jobs.sqlite3"
        self._keep = keep_finished
        first = sqlite3.connect(self._path, timeout=30)
        try:  # WAL is a property of the file: set once, not by every connection
            first.execute("PRAGMA journal_mode=WAL")
        finally:
            first.close()
        with self._tx() as conn:
            for statement in SCHEMA:
                conn.execute(statement)
        self._remove_orphans()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (``BEGIN IMMEDIATE``) so claims never race."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _remove_orphans(self) -> None:
        """Staged folders of uploads that crashed before their row committed (an hour old)."""
        with self._tx() as conn:
            known = {
                row[0] for row in conn.execute("SELECT id FROM jobs WHERE finished_at IS NULL")
            }
        for folder in self._staged.iterdir():
            old = time.time() - folder.stat().st_mtime > ORPHAN_AGE_S
            if folder.name not in known and old:
                shutil.rmtree(folder, ignore_errors=True)

    def create(
        self,
        collection: str,
        files: Sequence[StagedUpload],
        options: JobOptions,
        trace_context: Mapping[str, str] | None = None,
    ) -> Job:
        """Move the files into the staging folder (fsynced), then commit the job row."""
        job_id = uuid.uuid4().hex
        folder = self._staged / job_id
        folder.mkdir()
        for index, item in enumerate(files):
            if item.path is not None:
                fsync_path(item.path)
                os.replace(item.path, folder / str(index))
        fsync_path(folder)
        fsync_path(self._staged)
        now = time.time()
        trace = json.dumps(dict(trace_context)) if trace_context else None
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO jobs (id, collection, state, files_total, options, trace_context, "
                "created_at) VALUES (?, ?, 'queued', ?, ?, ?, ?)",
                [job_id, collection, len(files), json.dumps(options_to_json(options)), trace, now],
            )
            conn.executemany(
                "INSERT INTO job_files (job_id, idx, source, result) VALUES (?, ?, ?, ?)",
                [
                    (
                        job_id,
                        i,
                        f.source,
                        json.dumps(result_to_json(f.result)) if f.result else None,
                    )
                    for i, f in enumerate(files)
                ],
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        """The job with its results, or None."""
        conn = self._connect()
        try:
            row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", [job_id]).fetchone()
            if row is None:
                return None
            results = [
                result_from_json(json.loads(r[0]))
                for r in conn.execute(
                    "SELECT result FROM job_files WHERE job_id = ? AND result IS NOT NULL "
                    "ORDER BY idx",
                    [job_id],
                )
            ]
        finally:
            conn.close()
        return job_from_row(row, results)

    def claim(self, worker: str, lease_s: float, is_dead: IsDead) -> Job | None:
        """Take the oldest queued job, or a running one whose worker died or lease ran out."""
        now = time.time()
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT id, state, worker, lease_until FROM jobs "
                "WHERE state IN ('queued', 'running') ORDER BY created_at, id"
            ).fetchall()
            chosen = next(
                (
                    job_id
                    for job_id, state, owner, lease in rows
                    if state == "queued" or lease is None or lease < now or is_dead(owner or "")
                ),
                None,
            )
            if chosen is None:
                return None
            conn.execute(
                "UPDATE jobs SET state = 'running', worker = ?, claimed_by = ?, "
                "lease_until = ?, attempts = attempts + 1 WHERE id = ?",
                [worker, worker, now + lease_s, chosen],
            )
        return self.get(chosen)

    def _owned(self, conn: sqlite3.Connection, job_id: str, worker: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM jobs WHERE id = ? AND worker = ? AND state = 'running'",
            [job_id, worker],
        ).fetchone()
        return row is not None

    def heartbeat(self, job_id: str, worker: str, lease_s: float) -> bool:
        """Renew the lease."""
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND worker = ? AND state = 'running'",
                [time.time() + lease_s, job_id, worker],
            )
            return cursor.rowcount == 1

    def pending(self, job_id: str) -> list[PendingFile]:
        """The files without a result."""
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT idx, source FROM job_files WHERE job_id = ? AND result IS NULL "
                "ORDER BY idx",
                [job_id],
            ).fetchall()
        finally:
            conn.close()
        return [PendingFile(int(idx), str(source)) for idx, source in rows]

    def materialize(self, job_id: str, index: int, dest: Path) -> None:
        """Link (or copy) the staged file to ``dest``; the staged copy stays until done."""
        staged = self._staged / job_id / str(index)
        try:
            os.link(staged, dest)
        except OSError:
            shutil.copyfile(staged, dest)

    def file_done(self, job_id: str, worker: str, index: int, result: FileResult) -> bool:
        """Record the result, then delete the staged file."""
        with self._tx() as conn:
            if not self._owned(conn, job_id, worker):
                return False
            conn.execute(
                "UPDATE job_files SET result = ? WHERE job_id = ? AND idx = ?",
                [_result_text(result), job_id, index],
            )
        (self._staged / job_id / str(index)).unlink(missing_ok=True)
        return True

    def add_chunks(self, job_id: str, worker: str, n: int) -> None:
        """Count chunks embedded."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE jobs SET chunks_embedded = chunks_embedded + ? WHERE id = ? AND worker = ?",
                [n, job_id, worker],
            )

    def finish(self, job_id: str, worker: str, state: JobState, error: str | None) -> bool:
        """End the job, delete its staged files, forget the oldest finished jobs."""
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = ?, error = ?, finished_at = ?, worker = NULL, "
                "lease_until = NULL WHERE id = ? AND worker = ? AND state = 'running'",
                [state, error, time.time(), job_id, worker],
            )
            if cursor.rowcount != 1:
                return False
            conn.execute(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE finished_at IS NOT "
                "NULL ORDER BY finished_at DESC LIMIT -1 OFFSET ?)",
                [self._keep],
            )
        shutil.rmtree(self._staged / job_id, ignore_errors=True)
        return True

    def release(self, job_id: str, worker: str) -> bool:
        """Queue the job again."""
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = 'queued', worker = NULL, lease_until = NULL "
                "WHERE id = ? AND worker = ? AND state = 'running'",
                [job_id, worker],
            )
            return cursor.rowcount == 1

    def drop_collection(self, collection: str) -> int:
        """Delete the collection's jobs and staged files."""
        with self._tx() as conn:
            ids = [
                r[0] for r in conn.execute("SELECT id FROM jobs WHERE collection = ?", [collection])
            ]
            conn.execute("DELETE FROM jobs WHERE collection = ?", [collection])
        for job_id in ids:
            shutil.rmtree(self._staged / job_id, ignore_errors=True)
        return len(ids)

    def close(self) -> None:
        """Nothing stays open between calls."""
