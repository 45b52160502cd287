"""The job service in one process: resuming, handing back at shutdown, nothing stored twice.

Real FAISS store and SQLite job store under the test's data dir, the deterministic embedder;
the moments that matter (a file embedding, a shutdown begun) are decided by events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from app.services.collections import CollectionService
from app.services.container import build_collections, build_job_store, build_pipeline
from app.services.documents import DocumentService
from app.services.jobs import Job, JobService
from app.services.observer import NullObserver
from app.settings import JobSettings, Settings
from core.errors import BackendUnavailable
from ingest.jobs import JobOptions, JobStore
from ingest.results import FileResult
from tests.fakes import HashEmbedder

WAIT = 60.0  # a safety net: each wait ends on an event long before


class GatedEmbedder(HashEmbedder):
    """Embeds the first ``free`` calls at once; later calls wait for ``gate``."""

    def __init__(self, free: int) -> None:
        super().__init__()
        self.free = free
        self.calls = 0
        self.entered = threading.Event()
        self.gate = threading.Event()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        if self.calls > self.free:
            self.entered.set()
            assert self.gate.wait(WAIT)
        return super().embed(texts)


class Parts:
    """A collection service, a document service and a job store over one data dir."""

    def __init__(self, settings: Settings, embedder: HashEmbedder) -> None:
        self.settings = settings
        self.collections: CollectionService = build_collections(settings, embedder)
        pipeline = build_pipeline(settings, embedder)
        pipeline.group_chunks = 1  # one embedding call per file
        self.documents = DocumentService(
            self.collections, pipeline, settings.data_dir / "uploads", 10_000_000
        )

    def service(self, store: JobStore | None = None, **jobs: float) -> JobService:
        return JobService(
            store or build_job_store(self.settings),
            self.documents,
            NullObserver(),
            JobSettings(**jobs),
            self.settings.data_dir / "uploads",
        )

    def submit(self, service: JobService, texts: list[str]) -> Job:
        uploads = [(f"doc{i}.txt", _stream(text)) for i, text in enumerate(texts)]
        return service.submit("default", self.documents.stage(uploads), JobOptions())

    def close(self) -> None:
        self.collections.close()


def _stream(text: str):  # type: ignore[no-untyped-def]
    import io

    return io.BytesIO(text.encode())


TEXTS = [f"Document {i} speaks of {word} and nothing else." for i, word in enumerate("abcd")]


@contextmanager
def parts(tmp_path: Path, embedder: HashEmbedder) -> Iterator[Parts]:
    built = Parts(Settings(data_dir=tmp_path / "data"), embedder)
    try:
        yield built
    finally:
        built.close()


def finished(service: JobService, job_id: str) -> Job:
    deadline = time.monotonic() + WAIT
    while (job := service.get(job_id)).finished_at is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return job


class ForgetsFirstResult:
    """A job store that loses the job right after the first file is stored, unrecorded."""

    def __init__(self, inner: JobStore) -> None:
        self.inner = inner
        self.dropped: list[str] = []

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def file_done(self, job_id: str, worker: str, index: int, result: FileResult) -> bool:
        if not self.dropped:  # as if the worker died here: its job goes back to the queue
            self.dropped.append(result.source)
            assert self.inner.release(job_id, worker)
            return False
        return self.inner.file_done(job_id, worker, index, result)


def test_a_file_stored_but_not_recorded_is_not_stored_twice(tmp_path: Path) -> None:
    with parts(tmp_path, HashEmbedder()) as p:
        store = ForgetsFirstResult(build_job_store(p.settings))
        service = p.service(store)  # type: ignore[arg-type]
        job = p.submit(service, TEXTS)
        service.start()
        try:
            done = finished(service, job.id)
        finally:
            service.close()
        assert store.dropped == ["doc0.txt"]
        assert done.state == "succeeded"
        assert done.attempts == 2
        by_source = {r.source: r.status for r in done.results}
        assert by_source == {
            "doc0.txt": "unchanged",  # stored by the first attempt, found by its hash
            "doc1.txt": "created",
            "doc2.txt": "created",
            "doc3.txt": "created",
        }
        default = p.collections.get("default")
        assert default.count_documents() == 4
        chunks = default.all_chunks()
        assert (
            len(chunks) == len({c.id for c in chunks}) == sum(r.chunk_count for r in done.results)
        )


def test_shutdown_stores_the_current_file_and_hands_the_job_back(tmp_path: Path) -> None:
    embedder = GatedEmbedder(free=1)
    with parts(tmp_path, embedder) as p:
        first = p.service(shutdown_grace_s=WAIT)
        job = p.submit(first, TEXTS)
        first.start()
        assert embedder.entered.wait(WAIT)  # the second file is embedding
        closing = threading.Thread(target=first.close)
        closing.start()
        assert first.stopping.wait(WAIT)
        embedder.gate.set()  # the current file may now finish
        closing.join(WAIT)
        assert not closing.is_alive()
        handed_back = first.get(job.id)
        assert handed_back.state == "queued"
        assert [r.source for r in handed_back.results] == ["doc0.txt", "doc1.txt"]

        second = p.service()
        second.start()
        try:
            done = finished(second, job.id)
        finally:
            second.close()
        assert done.state == "succeeded"
        assert [r.status for r in done.results] == ["created"] * 4
        assert p.collections.get("default").count_documents() == 4
        assert not any((p.settings.data_dir / "jobs" / "staged").iterdir())


def test_a_file_still_embedding_after_the_grace_is_handed_back_mid_file(tmp_path: Path) -> None:
    embedder = GatedEmbedder(free=1)
    with parts(tmp_path, embedder) as p:
        first = p.service(shutdown_grace_s=0.1)
        job = p.submit(first, TEXTS)
        first.start()
        assert embedder.entered.wait(WAIT)
        first.close()  # returns after the grace although the file is still embedding
        assert first.get(job.id).state == "queued"
        embedder.gate.set()  # the abandoned thread stores doc1, but may not record it

        second = p.service()
        second.start()
        try:
            done = finished(second, job.id)
        finally:
            second.close()
        assert done.state == "succeeded"
        assert {r.source: r.status for r in done.results}["doc0.txt"] == "created"
        default = p.collections.get("default")
        assert default.count_documents() == 4
        chunks = default.all_chunks()
        assert len(chunks) == len({c.id for c in chunks})


class DownOnce:
    """A job store whose database is away the first time a staged file is read."""

    def __init__(self, inner: JobStore) -> None:
        self.inner = inner
        self.failures = 0

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def materialize(self, job_id: str, index: int, dest: Path) -> None:
        if not self.failures:
            self.failures += 1
            raise BackendUnavailable("PostgreSQL at db:5432 is not available")
        self.inner.materialize(job_id, index, dest)


def test_a_job_whose_database_goes_away_is_paused_not_failed(tmp_path: Path) -> None:
    with parts(tmp_path, HashEmbedder()) as p:
        store = DownOnce(build_job_store(p.settings))
        service = p.service(store, poll_interval_s=0.05)  # type: ignore[arg-type]
        job = p.submit(service, TEXTS)
        service.start()
        try:
            done = finished(service, job.id)
        finally:
            service.close()
        assert store.failures == 1
        assert (done.state, done.attempts) == ("succeeded", 2)
        assert [r.status for r in done.results] == ["created"] * 4
        assert not list((p.settings.data_dir / "uploads").rglob(f"{job.id}-*"))


def test_without_workers_jobs_wait_and_a_deleted_collection_takes_its_uploads(
    tmp_path: Path,
) -> None:
    with parts(tmp_path, HashEmbedder()) as p:
        service = p.service(workers=0)
        p.collections.create("gone")
        uploads = [("secret.txt", _stream("zqxjvortexpalimpsest lives here"))]
        job = service.submit("gone", p.documents.stage(uploads), JobOptions())
        service.start()  # no thread: the job stays queued
        assert service.get(job.id).state == "queued"
        p.collections.on_delete.append(service.drop_collection)
        p.collections.delete("gone")
        with pytest.raises(Exception, match="unknown"):
            service.get(job.id)
        holding = [
            f
            for f in p.settings.data_dir.rglob("*")
            if f.is_file() and b"zqxjvortex" in f.read_bytes()
        ]
        assert holding == []
        service.close()
