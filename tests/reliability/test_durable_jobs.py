"""Durable jobs across real processes: replicas on one PostgreSQL, crashes, SIGTERM, workers.

Real ``ragserver serve`` / ``ragserver worker`` processes (the bundled MiniLM), real
PostgreSQL 16 + pgvector (pgserver), real pages of the Python docs. Every wait ends on an
event (a job's state, a log line, /readyz); the bounds are safety nets, except the 10 s a
SIGTERM is allowed, which is the requirement itself.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.pg import PgCluster
from tests.reliability.procs import Ragserver, doc_pages, until

pytestmark = pytest.mark.integration
STATUSES = {"created", "unchanged"}
#: Pages in the jobs that get killed or stopped midway, embedded a file at a time
#: (``ONE_FILE_GROUPS``). By default a job embeds the chunks of consecutive files in groups of
#: 512 and stores a group's files one after another, so a job of one group (these 45 pages
#: are ~170 chunks) ends milliseconds after its first stored file: a signal sent once that
#: file shows up found the job finished. A file at a time, 44 embeddings remain then.
JOB_PAGES = 45
ONE_FILE_GROUPS = {"RAG_INGEST__EMBED_GROUP_CHUNKS": "1"}


def pg_env(url: str, **extra: str) -> dict[str, str]:
    return {"RAG_VECTORSTORE__BACKEND": "pgvector", "RAG_VECTORSTORE__PGVECTOR__URL": url, **extra}


def pg_job_row(url: str, job_id: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT state, attempts, claimed_by, worker FROM ragserver.ingest_jobs WHERE id = %s",
            [job_id],
        ).fetchone()
        assert row is not None
        staged = conn.execute(
            "SELECT count(*) FROM ragserver.ingest_job_files WHERE job_id = %s "
            "AND content IS NOT NULL",
            [job_id],
        ).fetchone()
    return {
        "state": row[0],
        "attempts": row[1],
        "claimed_by": row[2],
        "worker": row[3],
        "staged": staged[0] if staged else -1,
    }


def sqlite_job_row(data_dir: Path, job_id: str) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{data_dir / 'jobs' / 'jobs.sqlite3'}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT state, attempts, claimed_by, worker FROM jobs WHERE id = ?", [job_id]
        ).fetchone()
    finally:
        conn.close()
    assert row is not None
    return {"state": row[0], "attempts": row[1], "claimed_by": row[2], "worker": row[3]}


def pid_of(worker: str | None) -> int:
    assert worker, "the job was never claimed"
    return int(worker.split("/")[1])


def check_finished(job: dict[str, Any], pages: list[Path]) -> None:
    assert job["state"] == "succeeded", job
    assert job["files_done"] == job["files_total"] == len(pages)
    assert sorted(f["filename"] for f in job["files"]) == sorted(p.name for p in pages)
    assert {f["status"] for f in job["files"]} <= STATUSES, job["files"]


@pytest.fixture(scope="module")
def replicas(
    pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Ragserver, Ragserver, str]]:
    """Two servers on one pgvector database, each taking jobs."""
    url = pg_cluster.url(pg_cluster.create_database())
    root = tmp_path_factory.mktemp("replicas")
    a = Ragserver(root, "a", pg_env(url, **ONE_FILE_GROUPS)).start()
    b = Ragserver(root, "b", pg_env(url, **ONE_FILE_GROUPS)).start()
    try:
        a.ready()
        b.ready()
        yield a, b, url
    finally:
        a.stop()
        b.stop()


def test_the_same_file_through_both_replicas_at_once_is_one_document(
    replicas: tuple[Ragserver, Ragserver, str],
) -> None:
    a, b, _ = replicas
    page = doc_pages(21)[20]
    start = threading.Barrier(2)
    answers: dict[str, httpx.Response] = {}

    def send(server: Ragserver) -> None:
        start.wait()
        answers[server.name] = server.upload([page], wait=True)

    threads = [threading.Thread(target=send, args=(s,)) for s in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {name: r.status_code for name, r in answers.items()} == {"a": 201, "b": 201}
    for server in (a, b):
        server.assert_stored_once([page.name])


def test_a_job_accepted_by_a_killed_replica_finishes_through_the_other(
    replicas: tuple[Ragserver, Ragserver, str],
) -> None:
    a, b, url = replicas
    pages = doc_pages(JOB_PAGES)
    accepted = a.upload(pages, wait=False)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]
    through_b = b.job(job_id)  # every replica answers for every job
    assert through_b["http_status"] == 200
    assert (through_b["collection"], through_b["files_total"]) == ("default", JOB_PAGES)

    until(lambda: b.job(job_id)["files_done"] >= 1, "the first file to be stored")
    running = pg_job_row(url, job_id)
    runner = a if pid_of(running["worker"]) == a.pid else b
    survivor = b if runner is a else a
    assert pid_of(running["worker"]) == runner.pid
    runner.kill()

    check_finished(survivor.finished_job(job_id), pages)
    row = pg_job_row(url, job_id)
    assert row["attempts"] == 2  # taken over, not run from the start by luck
    assert pid_of(row["claimed_by"]) == survivor.pid
    assert row["staged"] == 0  # staged bytes go once the job is done
    survivor.assert_stored_once([p.name for p in pages])
    hits = httpx.post(
        f"{survivor.url}/v1/collections/default/search",
        json={"query": "module documentation", "top_k": 3},
        timeout=60,
    )
    assert hits.status_code == 200, hits.text
    assert hits.json()["hits"]


def test_an_embedded_job_resumes_after_sigkill_and_restart(tmp_path: Path) -> None:
    pages = doc_pages(JOB_PAGES)
    first = Ragserver(tmp_path, "data", ONE_FILE_GROUPS).start().ready()
    try:
        accepted = first.upload(pages, wait=False)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        until(lambda: first.job(job_id)["files_done"] >= 1, "the first file to be stored")
    finally:
        first.kill()
    second = Ragserver(tmp_path, "data", ONE_FILE_GROUPS).start().ready()
    try:
        check_finished(second.finished_job(job_id), pages)
        row = sqlite_job_row(second.data_dir, job_id)
        assert row["attempts"] == 2
        assert pid_of(row["claimed_by"]) == second.pid
        second.assert_stored_once([p.name for p in pages])
        assert not any((second.data_dir / "jobs" / "staged").iterdir())
    finally:
        second.stop()


def test_sigterm_hands_the_job_back_within_10_s_and_the_next_server_finishes_it(
    tmp_path: Path,
) -> None:
    pages = doc_pages(JOB_PAGES)
    first = Ragserver(tmp_path, "data", ONE_FILE_GROUPS).start().ready()
    try:
        accepted = first.upload(pages, wait=False)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        until(lambda: first.job(job_id)["files_done"] >= 1, "the first file to be stored")
        seconds = first.terminate()
    finally:
        first.kill()
    assert seconds < 10, f"still running {seconds:.1f} s after SIGTERM"
    assert first.logged("handed back to the queue")
    row = sqlite_job_row(first.data_dir, job_id)
    assert (row["state"], row["worker"]) == ("queued", None)  # handed back, not left running

    second = Ragserver(tmp_path, "data", ONE_FILE_GROUPS).start().ready()
    try:
        check_finished(second.finished_job(job_id), pages)
        assert sqlite_job_row(second.data_dir, job_id)["attempts"] == 2
        second.assert_stored_once([p.name for p in pages])
    finally:
        second.stop()


def test_a_worker_process_runs_the_jobs_of_an_api_that_takes_none(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    url = pg_cluster.url(pg_cluster.create_database())
    pages = doc_pages(3)
    api = Ragserver(tmp_path, "api", pg_env(url, RAG_JOBS__WORKERS="0")).start().ready()
    worker = Ragserver(tmp_path, "worker", pg_env(url), command="worker")
    try:
        accepted = api.upload(pages, wait=False)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        assert api.job(job_id)["state"] == "queued"
        worker.start().ready()
        check_finished(api.finished_job(job_id), pages)
        row = pg_job_row(url, job_id)
        assert (pid_of(row["claimed_by"]), row["attempts"]) == (worker.pid, 1)
        api.assert_stored_once([p.name for p in pages])
        assert worker.terminate() < 10
    finally:
        worker.stop()
        api.stop()


def test_a_server_started_beside_a_stopping_one_waits_for_the_faiss_lock(
    tmp_path: Path,
) -> None:
    first = Ragserver(tmp_path, "data", {}).start().ready()
    second = Ragserver(tmp_path, "data", {"RAG_VECTORSTORE__FAISS__LOCK_WAIT_S": "600"})
    second.log = tmp_path / "second.log"
    try:
        second.start()
        until(lambda: second.logged("waiting up to 600 s"), "the second server to wait")
        waiting = httpx.get(f"{second.url}/readyz", timeout=10)
        assert (waiting.status_code, waiting.json()["status"]) == (503, "loading")
        first.terminate()
        second.ready()  # took the lock: ready without a restart
        assert second.logged("took the lock of collection folder")
    finally:
        first.stop()
        second.stop()
