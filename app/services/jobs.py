"""Background ingestion jobs (``?wait=false`` uploads): durable rows, workers, graceful stop.

Jobs live in the store's database (``ingest/jobs.py``), so every replica answers for every
job and a restart forgets none. Each process runs ``workers`` threads that claim queued jobs
(or jobs whose worker died), ingest the files not done yet and record each file's result as
it is stored. ``close`` (SIGTERM) stops claiming, lets a running job store its current file
for up to ``shutdown_grace_s`` and hands the job back to the queue, where the next process
resumes it.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.settings import JobSettings
from core import tracing
from core.errors import BackendUnavailable, NotFound, RagError
from ingest.chunking import document_id_for
from ingest.jobs import (
    Job,
    JobOptions,
    JobState,
    JobStore,
    StagedUpload,
    worker_is_dead,
    worker_name,
)
from ingest.results import FileResult, failed_result

from .documents import DocumentService, StagedFile
from .observer import ServiceObserver

__all__ = ["Job", "JobInterrupted", "JobService", "JobState"]
log = logging.getLogger(__name__)


class JobInterrupted(Exception):
    """A job stopped between files: handed back at shutdown, or no longer this worker's."""


@dataclass
class _Running:
    job_id: str
    worker: str
    lost: bool = False


class JobService:
    """Queues uploads as durable jobs, answers for them, and runs this process's workers."""

    def __init__(
        self,
        store: JobStore,
        documents: DocumentService,
        observer: ServiceObserver,
        settings: JobSettings,
        scratch_root: Path,
        workers: int | None = None,
    ) -> None:
        """Wire the service; no worker runs before ``start``.

        Args:
            store: Where job rows and staged files live.
            documents: Ingests a job's files.
            observer: Told about each file ingested.
            settings: Lease, polling and shutdown timing.
            scratch_root: Local folder for the files being ingested (``<data_dir>/uploads``).
            workers: Worker threads (``settings.workers`` by default; 0 runs none).
        """
        self._store = store
        self._documents = documents
        self._observer = observer
        self._settings = settings
        self._workers = settings.workers if workers is None else workers
        self._tag = uuid.uuid4().hex[:8]
        self._scratch = scratch_root / worker_name(self._tag).replace("/", "~")
        self._scratch_root = scratch_root
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._threads: list[threading.Thread] = []

    # -- the API side ---------------------------------------------------------------------

    def submit(
        self,
        collection: str,
        staged: Sequence[StagedFile],
        options: JobOptions,
        trace_context: Mapping[str, str] | None = None,
    ) -> Job:
        """Stage the files durably, record a queued job and wake a worker; returns the job.

        The job keeps the trace context of the request queuing it (``trace_context``, else
        the current one), so that its span is that request's child however much later, and
        in whatever process, it runs.
        """
        uploads = []
        for item in staged:
            result = None
            if item.path is None:
                assert item.error is not None
                doc_id = document_id_for(item.filename) if item.filename else ""
                result = failed_result(item.filename, doc_id, item.error)
                self._observer.file_ingested(result)
            uploads.append(StagedUpload(item.filename, item.path, result))
        if trace_context is None:
            trace_context = tracing.inject_context()
        try:
            job = self._store.create(collection, uploads, options, trace_context)
        finally:
            for item in staged:
                if item.path is not None:
                    item.path.unlink(missing_ok=True)
        self._wake.set()
        return job

    def get(self, job_id: str) -> Job:
        """Return a job; raises ``NotFound``."""
        job = self._store.get(job_id)
        if job is None:
            raise NotFound(
                f"job '{job_id}' is unknown (only the latest RAG_JOBS__KEEP_FINISHED finished "
                "jobs are kept)"
            )
        return job

    def drop_collection(self, collection: str) -> None:
        """Forget a deleted collection's jobs and their staged files."""
        self._store.drop_collection(collection)

    # -- the workers ----------------------------------------------------------------------

    @property
    def stopping(self) -> threading.Event:
        """Set once ``close`` began: no job is claimed any more."""
        return self._stop

    def start(self) -> None:
        """Start the worker threads and the heartbeat (none when ``workers`` is 0)."""
        if self._workers <= 0:
            log.info("this process takes no background jobs (RAG_JOBS__WORKERS=0)")
            return
        self._remove_dead_scratch()
        for slot in range(self._workers):
            thread = threading.Thread(
                target=self._loop, args=(slot,), name=f"ingest-job-{slot}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        beat = threading.Thread(target=self._heartbeat, name="ingest-job-heartbeat", daemon=True)
        beat.start()
        self._threads.append(beat)

    def _remove_dead_scratch(self) -> None:
        if not self._scratch_root.is_dir():
            return
        for folder in self._scratch_root.glob("*~*~*~*"):
            if worker_is_dead(folder.name.replace("~", "/")):
                shutil.rmtree(folder, ignore_errors=True)

    def _loop(self, slot: int) -> None:
        worker = worker_name(f"{self._tag}-{slot}")
        while not self._stop.is_set():
            try:
                job = self._store.claim(worker, self._settings.lease_s, worker_is_dead)
            except RagError as exc:  # the database is down: try again later
                log.warning("cannot look for jobs: %s", exc.message)
                job = None
            if job is None:
                if self._wake.wait(self._settings.poll_interval_s):
                    self._wake.clear()
                continue
            try:
                self._run(job, worker)
            except RagError as exc:  # could not record the outcome: the lease runs out
                log.warning("job %s: %s; its lease will run out", job.id, exc.message)

    def _heartbeat(self) -> None:
        interval = self._settings.lease_s / 3
        while not self._stop.wait(interval):
            with self._lock:
                running = list(self._running.values())
            for run in running:
                try:
                    if not self._store.heartbeat(run.job_id, run.worker, self._settings.lease_s):
                        log.warning("job %s was taken over by another worker", run.job_id)
                        run.lost = True
                except RagError as exc:
                    log.warning("cannot renew the lease of job %s: %s", run.job_id, exc.message)

    def _run(self, job: Job, worker: str) -> None:
        attributes: dict[str, str | int] = {
            "job.id": job.id,
            "collection": job.collection,
            "files": job.files_total,
            "job.attempt": job.attempts,
        }
        with tracing.job_span(job.trace_context, attributes=attributes) as span:
            outcome = self._attempt(job, worker)
            if outcome is not None and outcome[1] is not None:
                span.record_exception(outcome[1])
        if outcome is not None:
            self._store.finish(job.id, worker, outcome[0], _message(outcome[1]))

    def _attempt(self, job: Job, worker: str) -> tuple[JobState, Exception | None] | None:
        """Ingest the job's files: its final state and error, or None when it was handed back."""
        run = _Running(job.id, worker)
        with self._lock:
            self._running[job.id] = run
        log.info("job %s: %s on %s (attempt %d)", job.id, job.state, worker, job.attempts)
        try:
            self._ingest(job, run)
            return "succeeded", None
        except (JobInterrupted, BackendUnavailable) as exc:  # resumed later, here or elsewhere
            if not run.lost and self._store.release(job.id, worker):
                log.info("job %s handed back to the queue", job.id)
            if isinstance(exc, BackendUnavailable):  # not at once: wait for it to come back
                log.warning("job %s paused: %s", job.id, exc.message)
                self._stop.wait(self._settings.poll_interval_s)
            return None
        except Exception as exc:  # noqa: BLE001 - a job's failure is reported, not raised
            log.exception("job %s failed", job.id)
            return "failed", exc
        finally:
            with self._lock:
                self._running.pop(job.id, None)
            for leftover in self._scratch.glob(f"{job.id}-*"):
                leftover.unlink(missing_ok=True)

    def _ingest(self, job: Job, run: _Running) -> None:
        """Ingest the job's files without a result, recording each as it is stored."""
        pending = self._store.pending(job.id)
        self._scratch.mkdir(parents=True, exist_ok=True)
        indices: dict[str, list[int]] = {}
        staged = []
        for item in pending:
            path = self._scratch / f"{job.id}-{item.index}"
            self._store.materialize(job.id, item.index, path)
            staged.append(StagedFile(item.source, path))
            indices.setdefault(item.source, []).append(item.index)

        def file_done(result: FileResult) -> None:
            index = indices[result.source].pop(0)
            if not self._store.file_done(job.id, run.worker, index, result):
                run.lost = True
            else:
                self._observer.file_ingested(result)
            if run.lost or self._stop.is_set():
                raise JobInterrupted(job.id)

        def chunks_done(n: int) -> None:
            self._store.add_chunks(job.id, run.worker, n)

        if self._stop.is_set():
            raise JobInterrupted(job.id)
        options = job.options
        self._documents.ingest_staged(
            job.collection,
            staged,
            options.metadata,
            options.chunk_size,
            options.chunk_overlap,
            file_done,
            chunks_done,
        )

    def close(self) -> None:
        """Stop taking jobs; hand running ones back once their current file is stored.

        A job that does not reach the end of a file within ``shutdown_grace_s`` is handed
        back anyway; its worker thread's later writes are refused (the job is no longer its),
        and a file it stores meanwhile is found unchanged by the next worker.
        """
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + self._settings.shutdown_grace_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = list(self._running.values())
        for run in left:
            run.lost = True
            try:
                if self._store.release(run.job_id, run.worker):
                    log.warning(
                        "job %s handed back to the queue mid-file (shutdown grace of %g s over)",
                        run.job_id,
                        self._settings.shutdown_grace_s,
                    )
            except RagError as exc:
                log.warning("could not hand back job %s: %s", run.job_id, exc.message)
        self._store.close()


def _message(exc: Exception | None) -> str | None:
    if exc is None:
        return None
    return exc.message if isinstance(exc, RagError) else str(exc)
