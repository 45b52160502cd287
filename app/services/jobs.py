"""Background ingestion jobs (``?wait=false`` uploads) and their progress."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from core import tracing
from core.errors import NotFound
from ingest.pipeline import FileResult

JobState = Literal["queued", "running", "succeeded", "failed"]
KEEP_FINISHED = 1000


@dataclass
class Job:
    """One upload processed in the background."""

    id: str
    collection: str
    files_total: int
    state: JobState = "queued"
    files_done: int = 0
    chunks_embedded: int = 0
    results: list[FileResult] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    error: str | None = None
    trace_context: dict[str, str] = field(default_factory=dict)


class JobManager:
    """Runs ingestion jobs one at a time on a worker thread and tracks their progress.

    Jobs live in memory: a restart forgets finished jobs, and a job cut by a crash leaves each
    of its files either fully stored or not stored (the store's writes are atomic per file).
    """

    def __init__(self, workers: int = 1) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest-job")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def submit(
        self,
        collection: str,
        files_total: int,
        work: Callable[[Job], list[FileResult]],
    ) -> Job:
        """Queue ``work``; it receives the job to report progress on.

        The job keeps the trace context of the request queuing it, so that its span is that
        request's child however much later, and on whatever thread, it runs.
        """
        job = Job(
            id=uuid.uuid4().hex,
            collection=collection,
            files_total=files_total,
            trace_context=tracing.inject_context(),
        )
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Callable[[Job], list[FileResult]]) -> None:
        job.state = "running"
        attributes: dict[str, str | int] = {
            "job.id": job.id,
            "collection": job.collection,
            "files": job.files_total,
        }
        with tracing.job_span(job.trace_context, attributes=attributes) as span:
            try:
                work(job)
                job.state = "succeeded"
            except Exception as exc:  # noqa: BLE001 - a job's failure is reported, not raised
                job.error = str(exc)
                job.state = "failed"
                span.record_exception(exc)
            finally:
                job.finished_at = time.time()

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.finished_at is not None]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job_id]

    def get(self, job_id: str) -> Job:
        """Return a job; raises ``NotFound``."""
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"job '{job_id}' is unknown (jobs are kept in memory until restart)")
        return job

    def close(self) -> None:
        """Wait for running jobs, then stop the worker."""
        self._pool.shutdown(wait=True, cancel_futures=False)
