"""The FAISS backend under the shared contract, flat and HNSW, plus its own guarantees."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.errors import BackendUnavailable, ConfigurationError
from tests.vectorstores.contract import (
    DIM,
    MODEL,
    VectorStoreContract,
    ids,
    make_doc,
    rand_vectors,
)
from vectorstores.base import VectorStore, VectorStoreClient
from vectorstores.faiss_client import FaissClient


class TestFaissFlatContract(VectorStoreContract):
    options: dict[str, object] = {"index": "flat"}

    @pytest.fixture
    def client(self, data_dir: Path) -> Iterator[VectorStoreClient]:
        client = FaissClient(data_dir, **self.options)  # type: ignore[arg-type]
        yield client
        client.close()

    def reopen(self, client: VectorStoreClient, data_dir: Path) -> VectorStoreClient:
        client.close()
        return FaissClient(data_dir, **self.options)  # type: ignore[arg-type]


class TestFaissHnswContract(TestFaissFlatContract):
    options = {"index": "hnsw", "hnsw_m": 16, "hnsw_ef_search": 32}


def _fill(store: VectorStore, n_docs: int, per_doc: int, seed: int = 0) -> np.ndarray:
    vectors = rand_vectors(n_docs * per_doc, seed=seed)
    for d in range(n_docs):
        rec, chunks = make_doc(f"d{d:03d}", per_doc, {"group": d % 4})
        store.replace_document(rec, chunks, vectors[d * per_doc : (d + 1) * per_doc])
    return vectors


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_tombstones_then_compaction(tmp_path: Path, kind: str) -> None:
    client = FaissClient(tmp_path, index=kind, hnsw_m=8, tombstone_ratio=0.2)
    store = client.create_collection("notes", MODEL, DIM)
    vectors = _fill(store, 20, 5)  # 100 vectors
    store.delete_document("d000")
    store.delete(["d001:00000", "d001:00001"])
    assert store.tombstones == 7  # the ids stay in the index, excluded from searches
    assert store.count() == 93
    hit_ids = ids(store.search(vectors[0], top_k=100))
    assert len(hit_ids) == 93
    assert not any(i.startswith("d000") for i in hit_ids)
    # replacing a document tombstones its old chunks too
    for d in (2, 3, 4):
        rec, chunks = make_doc(f"d{d:03d}", 5, {"group": 9})
        store.replace_document(rec, chunks, vectors[d * 5 : d * 5 + 5])
    assert store.tombstones == 22  # 22 / 115 is under the 0.2 ratio
    store.delete_document("d005")  # 27 / 115 > 0.2: rebuilt without tombstones
    assert store.tombstones == 0
    assert store.count() == 88
    assert len(store.search(vectors[50], top_k=100)) == 88
    assert ids(store.search(vectors[51], top_k=1)) == ["d010:00001"]
    store.delete_document("d006")
    client.close()
    reopened = FaissClient(tmp_path, index=kind, hnsw_m=8).get_collection("notes")
    assert not reopened.repair_report.repaired
    assert reopened.count() == 83
    # a saved flat index holds no tombstones; HNSW keeps them across a reopen
    assert reopened.tombstones == (0 if kind == "flat" else 5)


def test_hnsw_tombstones_survive_reopen(tmp_path: Path) -> None:
    client = FaissClient(tmp_path, index="hnsw", hnsw_m=8)
    store = client.create_collection("notes", MODEL, DIM)
    vectors = _fill(store, 10, 4)
    store.delete_document("d003")
    client.close()
    store = FaissClient(tmp_path, index="hnsw", hnsw_m=8).get_collection("notes")
    assert store.repair_report.tombstoned == 4
    assert not store.repair_report.repaired
    assert store.tombstones == 4
    assert all(not h.chunk.id.startswith("d003") for h in store.search(vectors[12], top_k=50))


def test_hnsw_filter_through_selector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vectorstores.faiss_index as fi

    monkeypatch.setattr(fi, "EXACT_LIMIT", 10)  # force the IDSelector path of HNSW
    store = FaissClient(tmp_path, index="hnsw", hnsw_m=8, hnsw_ef_search=8).create_collection(
        "notes", MODEL, DIM
    )
    vectors = _fill(store, 100, 4)
    store.delete_document("d004")
    query = rand_vectors(1, seed=99)[0]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    hits = store.search(query, top_k=15, filter={"group": 0})
    assert len(hits) == 15
    assert {h.chunk.metadata["group"] for h in hits} == {0}
    assert all(h.chunk.document_id != "d004" for h in hits)
    scores = unit @ (query / np.linalg.norm(query))
    group0 = [i for i in range(400) if (i // 4) % 4 == 0 and i // 4 != 4]
    best = sorted(group0, key=lambda i: -scores[i])[:15]
    assert len(set(ids(hits)) & {f"d{i // 4:03d}:{i % 4:05d}" for i in best}) >= 13


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_repair_on_open(tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    client = FaissClient(tmp_path, index=kind, autosave_changes=10**6)
    store = client.create_collection("notes", MODEL, DIM)
    vectors = _fill(store, 5, 4)
    store.persist()
    index_file = next(store.folder.glob("index-*.faiss"))
    saved = index_file.read_bytes()
    store.delete_document("d000")
    rec, chunks = make_doc("d009", 3)
    store.replace_document(rec, chunks, rand_vectors(3, seed=7))
    client.close()
    # the index file is one save behind SQLite, as after a SIGKILL
    index_file.write_bytes(saved)
    with caplog.at_level(logging.WARNING):
        reopened = FaissClient(tmp_path, index=kind).get_collection("notes")
    report = reopened.repair_report
    assert report.repaired
    assert report.added == 3
    assert (report.removed + report.tombstoned) == 4
    assert "repaired its index" in caplog.text
    assert reopened.count() == 19
    assert ids(reopened.search(vectors[5], top_k=1)) == ["d001:00001"]
    assert all(h.chunk.document_id != "d000" for h in reopened.search(vectors[0], top_k=30))
    reopened.close()
    # a missing, then a corrupt index file: rebuilt from SQLite
    index_file.unlink()
    reopened = FaissClient(tmp_path, index=kind).get_collection("notes")
    assert reopened.repair_report.rebuilt
    assert reopened.repair_report.reason == "index file missing"
    reopened.close()
    index_file.write_bytes(b"garbage")
    reopened = FaissClient(tmp_path, index=kind).get_collection("notes")
    assert reopened.repair_report.rebuilt
    assert len(reopened.search(vectors[5], top_k=30)) == 19
    reopened.close()


def test_changing_index_kind_rebuilds(tmp_path: Path) -> None:
    client = FaissClient(tmp_path, index="flat")
    vectors = _fill(client.create_collection("notes", MODEL, DIM), 3, 3)
    client.close()
    store = FaissClient(tmp_path, index="hnsw").get_collection("notes")
    assert store.repair_report.rebuilt
    assert ids(store.search(vectors[4], top_k=1)) == ["d001:00001"]


def test_one_process_per_collection(tmp_path: Path) -> None:
    client = FaissClient(tmp_path)
    client.create_collection("notes", MODEL, DIM)
    other = FaissClient(tmp_path)
    with pytest.raises(BackendUnavailable):
        other.get_collection("notes")
    client.close()
    assert other.get_collection("notes").count() == 0


def test_unknown_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        FaissClient(tmp_path, index="ivf")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        FaissClient(tmp_path, nprobe=3)


def test_closed_store_is_reopened_by_client(tmp_path: Path) -> None:
    client = FaissClient(tmp_path)
    store = client.create_collection("notes", MODEL, DIM)
    store.close()
    with pytest.raises(BackendUnavailable):
        store.count()
    assert client.get_collection("notes").count() == 0


def test_searches_run_during_writes(tmp_path: Path) -> None:
    store = FaissClient(tmp_path).create_collection("notes", MODEL, DIM)
    _fill(store, 10, 5)
    errors: list[BaseException] = []
    done = threading.Event()
    passes = [0, 0, 0]  # reader passes, each reader its own slot

    def search_loop(me: int) -> None:
        try:
            while not done.is_set():
                hits = store.search(rand_vectors(1)[0], top_k=5, filter={"group": 1})
                assert len(hits) == 5
                assert store.count() % 5 == 0  # a document is never half written
                assert {r.chunk_count for r in store.list_documents()} == {5}
                passes[me] += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def await_passes(more_than: int) -> None:
        """Wait until the readers have made more than ``more_than`` passes in all."""
        deadline = time.monotonic() + 30
        while sum(passes) <= more_than and not errors and time.monotonic() < deadline:
            time.sleep(0.001)

    readers = [threading.Thread(target=search_loop, args=(i,)) for i in range(3)]
    for t in readers:
        t.start()
    vectors = rand_vectors(5 * 40, seed=3)
    interleaved = 0
    for d in range(40):  # replace and add documents while the readers search
        rec, chunks = make_doc(f"d{d % 15:03d}", 5, {"group": d % 15 % 4})
        before = sum(passes)
        store.replace_document(rec, chunks, vectors[d * 5 : d * 5 + 5])
        await_passes(before)  # a slow machine only makes this wait longer
        interleaved += sum(passes) > before
    done.set()
    for t in readers:
        t.join()
    assert not errors
    assert interleaved == 40, "the readers did not search between the writes"
    assert store.count() == 75


def test_delete_document_touches_only_its_chunks(tmp_path: Path) -> None:
    store = FaissClient(tmp_path).create_collection("notes", MODEL, DIM)
    _fill(store, 50, 4)
    plan = store._writer.execute(  # noqa: SLF001
        "EXPLAIN QUERY PLAN SELECT seq FROM chunks WHERE document_id = ?", ("d001",)
    ).fetchall()
    assert "chunks_by_document" in str(plan)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_search_many_matches_one_by_one(kind: str) -> None:
    from vectorstores.faiss_index import FaissIndex

    index = FaissIndex(DIM, kind)  # type: ignore[arg-type]
    vectors = rand_vectors(500, seed=5)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[10] = vectors[11] = vectors[12]  # a three-way tie
    index.add(np.arange(500, dtype=np.int64), vectors)
    index.remove(np.arange(0, 500, 7, dtype=np.int64))  # tombstones are excluded
    queries = np.vstack([rand_vectors(6, seed=9), vectors[10:11]])
    ks = [1, 5, 10, 3, 50, 7, 2]  # the last query's cut (2) falls inside the tie
    batched = index.search_many(queries, ks)
    for row, k in enumerate(ks):
        alone_scores, alone_ids = index.search(queries[row : row + 1], k)
        scores, ids = batched[row]
        assert ids.tolist() == alone_ids.tolist()
        np.testing.assert_allclose(scores, alone_scores, rtol=1e-5, atol=1e-6)
        assert not set(ids.tolist()) & set(range(0, 500, 7))
    tie_ids = set(batched[-1][1].tolist())
    assert {10, 11, 12} <= tie_ids  # widened past k so the caller can break the tie by id


def test_concurrent_searches_are_coalesced_and_each_gets_its_own_hits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vectorstores.faiss_index import FaissIndex

    store = FaissClient(tmp_path).create_collection("notes", MODEL, DIM)
    _fill(store, 40, 10)
    store.delete_document("d003")
    queries = rand_vectors(32, seed=21)
    expected = [ids(store.search(q, top_k=1 + i % 9)) for i, q in enumerate(queries)]

    sizes: list[int] = []
    original = FaissIndex.search_many
    gate = threading.Barrier(8)

    def recording(self: FaissIndex, batch: np.ndarray, ks: list[int]) -> object:
        sizes.append(len(ks))
        return original(self, batch, ks)

    monkeypatch.setattr(FaissIndex, "search_many", recording)
    got: dict[int, list[str]] = {}

    def worker(offset: int) -> None:
        gate.wait(10)
        for i in range(offset, len(queries), 8):
            got[i] = ids(store.search(queries[i], top_k=1 + i % 9))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [got[i] for i in range(len(queries))] == expected
    assert sum(sizes) == len(queries)  # every unfiltered search went through the batcher
    assert all(not hit.startswith("d003:") for ids_ in got.values() for hit in ids_)
