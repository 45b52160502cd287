"""Durable ingestion jobs: what a job row holds, and the ``JobStore`` contract.

A background upload (``?wait=false``) is a job row in the store's database and its files are
staged durably beside it (``job_store_sqlite.py`` under the data directory, ``job_store_pg.py``
in PostgreSQL) before the upload is answered. Any process's worker claims queued jobs; a
claim is a lease, renewed by a heartbeat. A job whose worker died is taken over: at once when
the worker was a process on the same host that no longer runs, otherwise once its lease ran
out. The next worker ingests only the files not yet recorded as done; a file that was stored
but not recorded is ingested again and found ``unchanged`` by its hash, so nothing is stored
twice.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from core.types import MetadataValue
from ingest.results import FileResult

JobState = Literal["queued", "running", "succeeded", "failed"]
FINISHED_STATES: tuple[JobState, ...] = ("succeeded", "failed")
IsDead = Callable[[str], bool]


@dataclass(frozen=True)
class JobOptions:
    """How a job's files are ingested (as the upload asked).

    Attributes:
        metadata: User metadata for each file (None keeps a replaced document's metadata).
        chunk_size: Overrides the configured chunk size.
        chunk_overlap: Overrides the configured chunk overlap.
    """

    metadata: dict[str, MetadataValue] | None = None
    chunk_size: int | None = None
    chunk_overlap: int | None = None


@dataclass
class Job:
    """One background upload, as its row says.

    Attributes:
        id: The job's id.
        collection: Where its files go.
        files_total: Files in the upload.
        state: ``queued``, ``running``, ``succeeded`` or ``failed``.
        files_done: Files with a result.
        chunks_embedded: Chunks embedded so far (a file redone after a takeover counts twice).
        results: The results of the files done, in upload order.
        created_at: When the upload was accepted (epoch seconds).
        finished_at: When the job finished.
        error: Why the job as a whole failed.
        options: How the files are ingested.
        trace_context: The submitting request's trace carrier (W3C headers), if any.
        attempts: Times a worker claimed the job.
        claimed_by: The worker that claimed it last (``host/pid/start/tag``).
    """

    id: str
    collection: str
    files_total: int
    state: JobState = "queued"
    files_done: int = 0
    chunks_embedded: int = 0
    results: list[FileResult] = field(default_factory=list)
    created_at: float = 0.0
    finished_at: float | None = None
    error: str | None = None
    options: JobOptions = field(default_factory=JobOptions)
    trace_context: dict[str, str] | None = None
    attempts: int = 0
    claimed_by: str | None = None


@dataclass(frozen=True)
class StagedUpload:
    """One file of a new job: its bytes on local disk, or its result when it was refused.

    Attributes:
        source: The document's source name.
        path: A local file holding the bytes (the store moves or copies it).
        result: The ``failed`` result of a file refused while staging (no bytes).
    """

    source: str
    path: Path | None
    result: FileResult | None = None


@dataclass(frozen=True)
class PendingFile:
    """A file of a job without a result yet."""

    index: int
    source: str


class JobStore(Protocol):
    """Job rows and their staged files, shared by every process using one database.

    Every change a worker makes names the worker; a change by a worker that no longer holds
    the job (it was handed back, or taken over after its lease ran out) is refused (False).
    """

    def create(
        self,
        collection: str,
        files: Sequence[StagedUpload],
        options: JobOptions,
        trace_context: Mapping[str, str] | None = None,
    ) -> Job:
        """Stage the files durably and record a queued job; local ``path`` files are consumed."""
        ...

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        ...

    def claim(self, worker: str, lease_s: float, is_dead: IsDead) -> Job | None:
        """Take the oldest queued job, or one whose worker is dead or whose lease ran out."""
        ...

    def heartbeat(self, job_id: str, worker: str, lease_s: float) -> bool:
        """Renew the worker's lease; False when the job is no longer the worker's."""
        ...

    def pending(self, job_id: str) -> list[PendingFile]:
        """The files of a job without a result, in upload order."""
        ...

    def materialize(self, job_id: str, index: int, dest: Path) -> None:
        """Write a staged file's bytes to ``dest`` (a local scratch file the caller deletes)."""
        ...

    def file_done(self, job_id: str, worker: str, index: int, result: FileResult) -> bool:
        """Record a file's result and delete its staged bytes."""
        ...

    def add_chunks(self, job_id: str, worker: str, n: int) -> None:
        """Count ``n`` more chunks embedded."""
        ...

    def finish(self, job_id: str, worker: str, state: JobState, error: str | None) -> bool:
        """End the job and delete every staged byte of it."""
        ...

    def release(self, job_id: str, worker: str) -> bool:
        """Hand a running job back to the queue (another worker resumes it)."""
        ...

    def drop_collection(self, collection: str) -> int:
        """Forget the jobs of a deleted collection and their staged files; how many."""
        ...

    def close(self) -> None:
        """Close the connections."""
        ...


def result_to_json(result: FileResult) -> dict[str, Any]:
    """A file result as stored in a job row (without the exception object)."""
    return {
        "source": result.source,
        "document_id": result.document_id,
        "status": result.status,
        "chunk_count": result.chunk_count,
        "error": result.error,
        "error_type": result.error_type,
        "warnings": list(result.warnings),
    }


def result_from_json(row: Mapping[str, Any]) -> FileResult:
    """Read back ``result_to_json``."""
    return FileResult(
        source=str(row["source"]),
        document_id=str(row["document_id"]),
        status=row["status"],
        chunk_count=int(row.get("chunk_count") or 0),
        error=row.get("error"),
        error_type=row.get("error_type"),
        warnings=tuple(row.get("warnings") or ()),
    )


def options_to_json(options: JobOptions) -> dict[str, Any]:
    """Job options as stored in a job row."""
    return asdict(options)


def options_from_json(row: Mapping[str, Any] | None) -> JobOptions:
    """Read back ``options_to_json``."""
    row = row or {}
    return JobOptions(row.get("metadata"), row.get("chunk_size"), row.get("chunk_overlap"))


def job_from_row(row: Sequence[Any], results: list[FileResult]) -> Job:
    """A job from its row and its files' results.

    The row's columns: ``id, collection, state, files_total, chunks_embedded, options,
    trace_context, error, attempts, created_at, finished_at, claimed_by`` (JSON as text or
    decoded).
    """
    options, trace = (json.loads(v) if isinstance(v, str) else v for v in (row[5], row[6]))
    return Job(
        id=str(row[0]),
        collection=str(row[1]),
        state=row[2],
        files_total=int(row[3]),
        files_done=len(results),
        chunks_embedded=int(row[4]),
        results=results,
        created_at=float(row[9]),
        finished_at=None if row[10] is None else float(row[10]),
        error=row[7],
        options=options_from_json(options),
        trace_context=trace or None,
        attempts=int(row[8]),
        claimed_by=row[11],
    )


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def worker_name(tag: str) -> str:
    """A worker of this process as named in job rows: ``host/pid/start/tag``.

    The start time (clock ticks since boot, Linux) tells a reused pid apart.
    """
    pid = os.getpid()
    fields = _proc_stat(pid)
    start = fields[19] if fields else "?"
    return f"{socket.gethostname()}/{pid}/{start}/{tag}"


def worker_is_dead(worker: str) -> bool:
    """Whether a worker named by ``worker_name`` was a process on this host that has ended.

    A worker on another host is never known dead here: its lease decides.
    """
    parts = worker.split("/")
    if len(parts) < 4 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if Path("/proc/self/stat").exists():
        fields = _proc_stat(pid)
        # gone, a zombie (killed, not yet reaped), or another process with the same pid
        return fields is None or fields[0] in ("Z", "X") or fields[19] != parts[2]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
