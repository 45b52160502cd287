"""A process that writes to a FAISS collection until it is killed (used by ``test_crash``).

Run as ``python -m tests.vectorstores.crash_worker DATA_DIR KIND AUTOSAVE SEED``. Every document
version is deterministic, so the test can recompute the vectors of whatever survived.
"""

from __future__ import annotations

import random
import sys
import zlib
from pathlib import Path

import numpy as np

from core.types import Chunk, DocumentRecord
from vectorstores.faiss_client import FaissClient

DIM = 16
COLLECTION = "crash"
WRITTEN_AFTER = 5  # writes committed before the worker says "written"


def document(doc_id: str, version: int) -> tuple[DocumentRecord, list[Chunk], np.ndarray]:
    """The deterministic content of ``doc_id`` at ``version``."""
    seed = zlib.crc32(f"{doc_id}/{version}".encode())
    n = 1 + seed % 12
    md = {"document_id": doc_id, "version": version}
    record = DocumentRecord(doc_id, f"{doc_id}.txt", str(version), n, {"version": version})
    chunks = [
        Chunk(f"{doc_id}:{p:05d}", doc_id, f"{doc_id} v{version} #{p}", {**md, "position": p})
        for p in range(n)
    ]
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return record, chunks, vectors


def main(data_dir: str, kind: str, autosave: int, seed: int) -> None:
    client = FaissClient(Path(data_dir), index=kind, hnsw_m=8, autosave_changes=autosave)
    store = client.get_or_create_collection(COLLECTION, "crash-model", DIM)
    rng = random.Random(seed)
    print("ready", flush=True)
    writes = 0
    while True:
        doc_id = f"doc{rng.randrange(60):03d}"
        if rng.random() < 0.15:
            store.delete_document(doc_id)
        else:
            record, chunks, vectors = document(doc_id, rng.randrange(10_000))
            store.replace_document(record, chunks, vectors)
        writes += 1
        if writes == WRITTEN_AFTER:  # the test kills only after this, however slow the machine
            print("written", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
