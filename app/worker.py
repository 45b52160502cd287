"""``ragserver worker``: a process that only runs background ingestion jobs (no HTTP).

It builds what ingestion needs (the embedder, the store, the pipeline, the job store), runs
``RAG_JOBS__WORKERS`` job threads (at least one) until SIGTERM or SIGINT, then stops as the
server does: no new job, the running one handed back once its current file is stored.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from app.settings import Settings

log = logging.getLogger("ragserver.worker")
SHARED_BACKENDS_HINT = (
    "a worker process runs beside the API processes, so it needs a store several processes "
    "share: pgvector (RAG_VECTORSTORE__BACKEND=pgvector) or a Chroma server "
    "(RAG_VECTORSTORE__CHROMA__URL); with {backend}, the server runs the jobs itself "
    "(RAG_JOBS__WORKERS=1, the default)"
)


def worker_problem(settings: Settings) -> str | None:
    """Why a separate worker cannot serve the configured backend, or None."""
    vs = settings.vectorstore
    if vs.backend in ("faiss", "memory") or (vs.backend == "chroma" and not vs.chroma.url):
        backend = vs.backend if vs.backend != "chroma" else "embedded chroma"
        return SHARED_BACKENDS_HINT.format(backend=backend)
    return None


def run_worker(settings: Settings, stop: threading.Event | None = None) -> int:
    """Run job threads until ``stop`` is set (by SIGTERM or SIGINT when not given)."""
    from app.logs import configure_logging
    from app.services.container import (
        build_collections,
        build_embedder,
        build_jobs,
        build_pipeline,
    )
    from app.services.documents import DocumentService
    from app.services.observer import NullObserver

    configure_logging(settings.server.log_level)
    stop = stop or _stop_on_signals()
    embedder = build_embedder(settings)
    collections = build_collections(settings, embedder)
    documents = DocumentService(
        collections,
        build_pipeline(settings, embedder),
        upload_dir=settings.data_dir / "uploads",
        max_file_bytes=int(settings.ingest.max_file_mb * 1_000_000),
    )
    workers = max(1, settings.jobs.workers)
    jobs = build_jobs(settings, documents, NullObserver(), workers=workers)
    jobs.start()
    log.info(
        "worker ready: %d job thread(s), embedder %s, vector store %s",
        workers,
        embedder.model_name,
        settings.vectorstore.backend,
    )
    try:
        stop.wait()
        log.info("stopping: no new jobs; handing back the running ones")
    finally:
        jobs.close()
        collections.close()
    return 0


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
