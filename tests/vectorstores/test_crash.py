"""SIGKILL a process writing to the FAISS backend at random moments; the store stays consistent.

After every kill the collection is reopened: its chunk count equals the sum of its documents'
chunk counts and the number of chunks it returns, every document holds exactly one version, and
each document is found by searching one of its own vectors.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.vectorstores.crash_worker import COLLECTION, document
from vectorstores.faiss_client import FaissClient

ROOT = Path(__file__).resolve().parents[2]
# (autosave_changes, seed) per kill: frequent index saves (kills can land inside one), then
# never saving (the next open must repair a stale or missing index file).
KILLS = [(25, 1), (10**6, 2), (25, 3), (10**6, 4)]


def _run_and_kill(data_dir: Path, kind: str, autosave: int, seed: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.vectorstores.crash_worker",
            str(data_dir),
            kind,
            str(autosave),
            str(seed),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for expected in ("ready", "written"):  # a stalled machine only delays these lines
            line = proc.stdout.readline()
            assert line.strip() == expected, proc.stderr.read() if proc.stderr else ""
        time.sleep(random.Random(seed).uniform(0.0, 0.9))
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _check(data_dir: Path, kind: str) -> bool:
    client = FaissClient(data_dir, index=kind, hnsw_m=8)
    try:
        store = client.get_collection(COLLECTION)
        records = store.list_documents()
        assert records, "the worker stored nothing before it was killed"
        assert store.count() == sum(r.chunk_count for r in records) == len(store.all_chunks())
        for record in records:
            _, expected, vectors = document(record.id, int(record.content_hash))
            chunks = store.get_chunks(record.id)
            assert chunks == expected  # one whole version, never a mix
            assert record.chunk_count == len(chunks)
            j = len(chunks) // 2
            hits = store.search(vectors[j], top_k=3, filter={"document_id": record.id})
            assert hits[0].chunk.id == chunks[j].id
            assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        return store.repair_report.repaired
    finally:
        client.close()


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_sigkill_leaves_a_consistent_store(tmp_path: Path, kind: str) -> None:
    repaired = []
    for autosave, seed in KILLS:
        _run_and_kill(tmp_path, kind, autosave, seed)
        repaired.append(_check(tmp_path, kind))
    if kind == "flat":  # HNSW also saves after every rebuild, so its file may be current
        assert repaired[1], "a never-saved index must have been repaired on open"
        assert repaired[3], "a never-saved index must have been repaired on open"
