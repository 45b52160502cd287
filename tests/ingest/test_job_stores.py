"""The two job stores (SQLite under the data dir, PostgreSQL) against one contract.

Real SQLite files and a real PostgreSQL 16 (pgserver). Leases are decided by passing a lease
already over (negative) or a long one, never by sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ingest.job_store_pg import PgJobStore
from ingest.job_store_sqlite import SqliteJobStore
from ingest.jobs import JobOptions, JobStore, StagedUpload
from ingest.results import FileResult
from tests.pg import PgCluster, unique

LONG = 3600.0
OVER = -1.0  # a lease that has already run out


def alive(worker: str) -> bool:
    return False


@pytest.fixture(params=["sqlite", "pgvector"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        job_store: JobStore = SqliteJobStore(tmp_path / "jobs", keep_finished=2)
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        job_store = PgJobStore(cluster.url(cluster.create_database()), unique("s"), keep_finished=2)
    try:
        yield job_store
    finally:
        job_store.close()


def staged(tmp_path: Path, *texts: str) -> list[StagedUpload]:
    files = []
    for i, text in enumerate(texts):
        path = tmp_path / f"upload-{i}.part"
        path.write_text(text)
        files.append(StagedUpload(f"doc{i}.txt", path))
    return files


def created(source: str) -> FileResult:
    return FileResult(source, f"id-{source}", "created", 3, warnings=("page 2 unreadable",))


def test_a_job_is_staged_claimed_once_and_finished(store: JobStore, tmp_path: Path) -> None:
    refused = FileResult("bad.exe", "id-bad", "failed", error="no", error_type="Unsupported")
    files = [*staged(tmp_path, "alpha text", "beta text"), StagedUpload("bad.exe", None, refused)]
    job = store.create("docs", files, JobOptions({"team": "a"}, 64, 8), {"traceparent": "00-x"})
    assert not any(f.path.exists() for f in files if f.path)  # consumed into the store
    assert (job.state, job.files_total, job.files_done) == ("queued", 3, 1)
    assert job.options == JobOptions({"team": "a"}, 64, 8)
    assert job.trace_context == {"traceparent": "00-x"}
    assert job.results == [refused]

    first = store.claim("w1", LONG, alive)
    assert first is not None
    assert first.id == job.id
    assert first.state == "running"
    assert store.claim("w2", LONG, alive) is None  # held, lease running, worker alive
    assert [p.source for p in store.pending(job.id)] == ["doc0.txt", "doc1.txt"]
    out = tmp_path / "scratch"
    store.materialize(job.id, 1, out)
    assert out.read_text() == "beta text"

    assert store.file_done(job.id, "w1", 0, created("doc0.txt"))
    store.add_chunks(job.id, "w1", 3)
    assert store.heartbeat(job.id, "w1", LONG)
    middle = store.get(job.id)
    assert middle is not None
    assert (middle.files_done, middle.chunks_embedded) == (2, 3)
    assert [p.index for p in store.pending(job.id)] == [1]
    assert store.finish(job.id, "w1", "succeeded", None)
    done = store.get(job.id)
    assert done is not None
    assert done.state == "succeeded"
    assert done.finished_at is not None
    assert done.results[0] == created("doc0.txt")
    assert done.claimed_by == "w1"
    assert done.attempts == 1
    assert store.claim("w2", LONG, alive) is None


def test_a_dead_or_expired_worker_loses_its_job(store: JobStore, tmp_path: Path) -> None:
    job = store.create("docs", staged(tmp_path, "one", "two"), JobOptions())
    assert store.claim("w1", LONG, alive) is not None
    assert store.file_done(job.id, "w1", 0, created("doc0.txt"))
    taken = store.claim("w2", LONG, lambda worker: worker == "w1")  # w1's process is gone
    assert taken is not None
    assert taken.id == job.id
    assert taken.attempts == 2
    # w1 may still be running somewhere: nothing it writes counts any more
    assert not store.file_done(job.id, "w1", 1, created("doc1.txt"))
    assert not store.heartbeat(job.id, "w1", LONG)
    assert not store.finish(job.id, "w1", "succeeded", None)
    assert [p.index for p in store.pending(job.id)] == [1]  # only the file not done

    assert store.heartbeat(job.id, "w2", OVER)  # w2's lease runs out
    again = store.claim("w3", LONG, alive)
    assert again is not None
    assert again.claimed_by == "w3"
    assert again.attempts == 3


def test_a_handed_back_job_is_queued_again(store: JobStore, tmp_path: Path) -> None:
    job = store.create("docs", staged(tmp_path, "one"), JobOptions())
    assert store.claim("w1", LONG, alive) is not None
    assert store.release(job.id, "w1")
    assert store.get(job.id).state == "queued"  # type: ignore[union-attr]
    assert not store.release(job.id, "w1")
    assert store.claim("w2", LONG, alive) is not None


def test_old_finished_jobs_and_deleted_collections_are_forgotten(
    store: JobStore, tmp_path: Path
) -> None:
    ids = []
    for i in range(3):
        job = store.create("docs", staged(tmp_path, f"text {i}"), JobOptions())
        assert store.claim("w", LONG, alive) is not None
        assert store.finish(job.id, "w", "failed", "boom")
        ids.append(job.id)
    assert store.get(ids[0]) is None  # keep_finished=2
    assert store.get(ids[2]) is not None
    assert store.get(ids[2]).error == "boom"
    queued = store.create("gone", staged(tmp_path, "secret words"), JobOptions())
    assert store.drop_collection("gone") == 1
    assert store.get(queued.id) is None
    assert store.claim("w", LONG, alive) is None


def test_staged_bytes_are_deleted_when_files_and_jobs_finish(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    sqlite = SqliteJobStore(tmp_path / "jobs")
    job = sqlite.create("docs", staged(tmp_path, "one", "two"), JobOptions())
    folder = tmp_path / "jobs" / "staged" / job.id
    assert sorted(p.name for p in folder.iterdir()) == ["0", "1"]
    assert sqlite.claim("w", LONG, alive) is not None
    assert sqlite.file_done(job.id, "w", 0, created("doc0.txt"))
    assert sorted(p.name for p in folder.iterdir()) == ["1"]
    assert sqlite.finish(job.id, "w", "succeeded", None)
    assert not folder.exists()

    url = pg_cluster.url(pg_cluster.create_database())
    pg = PgJobStore(url, "ragserver")
    job = pg.create("docs", staged(tmp_path, "one", "two"), JobOptions())

    def stored_bytes() -> int:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM ragserver.ingest_job_files WHERE content IS NOT NULL"
            ).fetchone()
        return int(row[0]) if row else -1

    assert stored_bytes() == 2
    assert pg.claim("w", LONG, alive) is not None
    assert pg.file_done(job.id, "w", 0, created("doc0.txt"))
    assert stored_bytes() == 1
    assert pg.finish(job.id, "w", "succeeded", None)
    assert stored_bytes() == 0
    pg.close()
