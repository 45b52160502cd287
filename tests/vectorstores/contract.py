"""The one contract every vector store backend passes (``vectorstores.base``).

A backend's test module subclasses ``VectorStoreContract`` and overrides the ``client``
fixture (and ``reopen`` when the backend persists). Gaps are explicit ``pytest.skip``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import (
    CollectionExists,
    CollectionNotFound,
    EmbeddingMismatch,
    FilterError,
    InvalidRequest,
)
from core.types import Chunk, DocumentRecord, Hit
from vectorstores.base import VectorStore, VectorStoreClient
from vectorstores.filters import matches

DIM = 8
MODEL = "test-model"
NAME = "test-col"


def basis(i: int, dim: int = DIM) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float32)
    v[i % dim] = 1.0
    return v


def rand_vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def make_doc(
    doc_id: str,
    n: int,
    metadata: dict[str, Any] | None = None,
    source: str | None = None,
    content_hash: str = "h0",
) -> tuple[DocumentRecord, list[Chunk]]:
    md = dict(metadata or {})
    record = DocumentRecord(doc_id, source or f"{doc_id}.txt", content_hash, n, md)
    chunks = [
        Chunk(f"{doc_id}:{p:05d}", doc_id, f"{doc_id} text {p}", {**md, "position": p})
        for p in range(n)
    ]
    return record, chunks


def ids(hits: Sequence[Hit]) -> list[str]:
    return [h.chunk.id for h in hits]


# A spread of metadata for the filter tests: missing keys, ints vs floats, bools, strings.
FILTER_METADATA: list[dict[str, Any]] = [
    {"lang": "en", "page": 1, "score": 0.5, "draft": False},
    {"lang": "fr", "page": 2, "score": 1.5, "draft": True},
    {"lang": "en", "page": 3, "draft": True},
    {"lang": "de", "page": 4.0, "score": 2},
    {"page": 5},
    {"lang": "en", "page": 1.5, "draft": False, "tag": "x"},
    {"lang": "fr", "score": -1.0, "tag": "y"},
    {"lang": "1", "page": 7, "draft": 1},
    {"lang": "en", "page": 2, "score": 3.25, "draft": False, "tag": "x"},
    {"lang": "es", "page": 10, "score": 0, "draft": True},
]
FILTERS: list[dict[str, Any]] = [
    {"lang": "en"},
    {"lang": {"$eq": "fr"}},
    {"lang": {"$ne": "en"}},
    {"tag": {"$ne": "x"}},
    {"lang": {"$in": ["de", "es"]}},
    {"page": {"$in": [1, 2]}},
    {"page": {"$in": [1.5, 4]}},
    {"page": 4},
    {"page": 1.5},  # Chroma alone would also match page=1 (it truncates 1.5 against ints)
    {"page": {"$gte": 1.5}},
    {"page": {"$lt": 2.5}},
    {"score": {"$gt": -0.5}},
    {"score": {"$ne": 0.5}},
    {"draft": True},
    {"draft": {"$ne": False}},
    {"draft": 1},
    {"page": {"$gt": 2}},
    {"page": {"$gte": 2}},
    {"page": {"$lt": 2}},
    {"page": {"$lte": 2}},
    {"score": {"$gte": 0.5, "$lt": 3}},
    {"lang": "en", "draft": False},
    {"$and": [{"lang": "en"}, {"page": {"$gt": 1}}]},
    {"$or": [{"lang": "de"}, {"tag": "y"}]},
    {"$or": [{"$and": [{"lang": "en"}, {"tag": "x"}]}, {"page": {"$gte": 7}}], "draft": {"$ne": 1}},
    {"$and": [{"lang": "fr"}]},
    {"nothing": "here"},
]


class VectorStoreContract:
    """Shared tests; subclasses provide ``client`` (and ``reopen`` if persistent)."""

    @pytest.fixture
    def data_dir(self, tmp_path: Path) -> Path:
        return tmp_path / "vs"

    @pytest.fixture
    def client(self, data_dir: Path) -> Iterator[VectorStoreClient]:
        raise NotImplementedError("subclasses provide the client fixture")

    def reopen(self, client: VectorStoreClient, data_dir: Path) -> VectorStoreClient:
        """Close ``client`` and return a new one over the same data."""
        pytest.skip(reason=f"the {client.backend} backend does not persist")

    @pytest.fixture
    def store(self, client: VectorStoreClient) -> VectorStore:
        return client.create_collection(NAME, MODEL, DIM)

    # -- collections ----------------------------------------------------------------------

    def test_collections_lifecycle(self, client: VectorStoreClient) -> None:
        a = client.create_collection("coll-b", MODEL, DIM)
        client.create_collection("coll-a", "other-model", 4)
        assert isinstance(a, VectorStore)
        assert isinstance(client, VectorStoreClient)
        assert (a.name, a.embedding_model, a.dimension) == ("coll-b", MODEL, DIM)
        rec, chunks = make_doc("d1", 3)
        a.replace_document(rec, chunks, rand_vectors(3))
        infos = client.list_collections()
        assert [i.name for i in infos] == ["coll-a", "coll-b"]
        assert (infos[0].embedding_model, infos[0].dimension) == ("other-model", 4)
        assert (infos[1].chunk_count, infos[1].document_count) == (3, 1)
        assert client.get_collection("coll-b").count() == 3
        assert client.get_or_create_collection("coll-b", MODEL, DIM).count() == 3
        assert client.delete_collection("coll-b") is True
        assert client.delete_collection("coll-b") is False
        assert [i.name for i in client.list_collections()] == ["coll-a"]
        with pytest.raises(CollectionNotFound):
            client.get_collection("coll-b")
        fresh = client.create_collection("coll-b", MODEL, DIM)
        assert fresh.count() == 0

    def test_create_existing_refused(self, client: VectorStoreClient, store: VectorStore) -> None:
        with pytest.raises(CollectionExists):
            client.create_collection(NAME, MODEL, DIM)

    def test_get_missing(self, client: VectorStoreClient) -> None:
        with pytest.raises(CollectionNotFound):
            client.get_collection("missing-one")
        assert client.delete_collection("missing-one") is False

    def test_invalid_collection_names(self, client: VectorStoreClient) -> None:
        for name in ["", "ab", "-lead", "trail-", "has space", "a/b", "../up", "x__docs"]:
            with pytest.raises(InvalidRequest):
                client.create_collection(name, MODEL, DIM)
        assert client.list_collections() == []

    def test_get_or_create_mismatch(self, client: VectorStoreClient, store: VectorStore) -> None:
        for model, dim in [("other-model", DIM), (MODEL, DIM + 1)]:
            with pytest.raises(EmbeddingMismatch):
                client.get_or_create_collection(NAME, model, dim)
        assert [(i.embedding_model, i.dimension) for i in client.list_collections()] == [
            (MODEL, DIM)
        ]

    def test_wrong_dimension_stores_nothing(self, store: VectorStore) -> None:
        rec, chunks = make_doc("d1", 2)
        with pytest.raises(EmbeddingMismatch):
            store.upsert(chunks, rand_vectors(2, dim=DIM + 2))
        with pytest.raises(EmbeddingMismatch):
            store.replace_document(rec, chunks, rand_vectors(2, dim=DIM - 1))
        with pytest.raises(InvalidRequest):
            store.upsert(chunks, rand_vectors(3))
        with pytest.raises(EmbeddingMismatch):
            store.search(np.ones(DIM + 1, dtype=np.float32))
        assert store.count() == 0
        assert store.get_document("d1") is None

    # -- writes ---------------------------------------------------------------------------

    def test_upsert_replaces_chunk(self, store: VectorStore) -> None:
        store.upsert([Chunk("c1", "d1", "old", {"v": 1})], basis(0)[None])
        store.upsert([Chunk("c1", "d1", "new", {"v": 2})], basis(1)[None])
        assert store.count() == 1
        (hit,) = store.search(basis(1), top_k=5)
        assert (hit.chunk.text, hit.chunk.metadata) == ("new", {"v": 2})
        assert hit.score == pytest.approx(1.0, abs=1e-5)

    def test_replaced_chunk_keeps_no_dropped_metadata_key(self, store: VectorStore) -> None:
        store.upsert([Chunk("c1", "d1", "old", {"v": 1, "page": 3, "tag": "x"})], basis(1)[None])
        store.upsert([Chunk("c1", "d1", "new", {"v": 2})], basis(1)[None])
        assert store.search(basis(1), top_k=5, filter={"page": 3}) == []
        assert store.search(basis(1), top_k=5, filter={"tag": "x"}) == []
        assert [h.chunk.metadata for h in store.search(basis(1), 5, {"v": 2})] == [{"v": 2}]

    def test_metadata_round_trip(self, store: VectorStore) -> None:
        md = {"s": "x", "i": 3, "f": 2.5, "b": True, "gone": None}
        store.upsert([Chunk("c1", "d1", "t", md)], basis(0)[None])
        (chunk,) = store.get_chunks("d1")
        assert chunk == Chunk("c1", "d1", "t", {"s": "x", "i": 3, "f": 2.5, "b": True})
        assert isinstance(chunk.metadata["b"], bool)
        assert isinstance(chunk.metadata["i"], int)
        with pytest.raises(InvalidRequest):
            store.upsert([Chunk("c2", "d1", "t", {"l": [1, 2]})], basis(0)[None])  # type: ignore[dict-item]

    def test_delete_chunks(self, store: VectorStore) -> None:
        rec, chunks = make_doc("d1", 4)
        store.replace_document(rec, chunks, rand_vectors(4))
        store.delete(["d1:00001", "missing"])
        store.delete([])
        assert [c.id for c in store.get_chunks("d1")] == ["d1:00000", "d1:00002", "d1:00003"]
        assert store.count() == 3
        assert "d1:00001" not in ids(store.search(rand_vectors(4)[1], top_k=10))
        record = store.get_document("d1")
        assert record is not None
        assert record.chunk_count == 3

    def test_delete_document(self, store: VectorStore) -> None:
        for i in range(3):
            rec, chunks = make_doc(f"d{i}", 3)
            store.replace_document(rec, chunks, rand_vectors(3, seed=i))
        assert store.delete_document("d1") is True
        assert store.delete_document("d1") is False
        assert store.delete_document("never") is False
        assert store.get_document("d1") is None
        assert store.get_chunks("d1") == []
        assert store.count() == 6
        hits = store.search(rand_vectors(3, seed=1)[0], top_k=10)
        assert all(h.chunk.document_id != "d1" for h in hits)
        assert len(hits) == 6

    def test_replace_document(self, store: VectorStore) -> None:
        rec, chunks = make_doc("d1", 5, {"v": 1}, content_hash="h1")
        store.replace_document(rec, chunks, rand_vectors(5))
        first = store.get_document("d1")
        assert first is not None
        assert first.chunk_count == 5
        assert first.created_at > 0
        rec2, chunks2 = make_doc("d1", 2, {"v": 2}, content_hash="h2")
        store.replace_document(rec2, chunks2, rand_vectors(2, seed=9))
        second = store.get_document("d1")
        assert second is not None
        assert (second.content_hash, second.chunk_count, second.metadata) == ("h2", 2, {"v": 2})
        assert second.created_at == first.created_at
        assert second.updated_at >= first.updated_at
        assert [c.id for c in store.get_chunks("d1")] == ["d1:00000", "d1:00001"]
        assert store.count() == 2
        assert all(h.chunk.metadata["v"] == 2 for h in store.search(basis(0), top_k=10))
        with pytest.raises(InvalidRequest):
            store.replace_document(rec2, [Chunk("x", "other", "t")], rand_vectors(1))

    def test_upsert_updates_chunk_count(self, store: VectorStore) -> None:
        rec, chunks = make_doc("d1", 2)
        store.replace_document(rec, chunks, rand_vectors(2))
        store.upsert([Chunk("d1:00002", "d1", "extra", {"position": 2})], basis(0)[None])
        record = store.get_document("d1")
        assert record is not None
        assert record.chunk_count == 3

    # -- search ---------------------------------------------------------------------------

    def test_search_order_scores_and_ties(self, store: VectorStore) -> None:
        vectors = np.stack([basis(1), basis(0), basis(0), basis(0) + basis(1), basis(2)])
        chunks = [Chunk(c, "d1", c) for c in ["e", "c", "a", "b", "d"]]
        store.upsert(chunks, vectors)
        hits = store.search(basis(0) * 3.0, top_k=5)
        assert ids(hits) == ["a", "c", "b", "d", "e"]
        assert [h.score for h in hits] == pytest.approx([1, 1, 2**-0.5, 0, 0], abs=1e-5)
        assert ids(store.search(basis(0), top_k=1)) == ["a"]
        assert ids(store.search(basis(0), top_k=3)) == ["a", "c", "b"]

    def test_ties_broken_by_id_at_the_cut(self, store: VectorStore) -> None:
        names = [f"t{i:02d}" for i in range(20)]
        random.Random(0).shuffle(names)
        store.upsert([Chunk(n, "d1", n) for n in names], np.tile(basis(3), (20, 1)))
        assert ids(store.search(basis(3), top_k=4)) == ["t00", "t01", "t02", "t03"]

    def test_top_k_and_threshold(self, store: VectorStore) -> None:
        rec, chunks = make_doc("d1", 30)
        store.replace_document(rec, chunks, rand_vectors(30))
        query = rand_vectors(1, seed=5)[0]
        hits = store.search(query, top_k=7)
        assert len(hits) == 7
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert len(store.search(query, top_k=100)) == 30
        threshold = hits[3].score - 1e-4
        kept = store.search(query, top_k=7, score_threshold=threshold)
        assert ids(kept) == ids(hits[:4])
        assert store.search(query, top_k=5, score_threshold=1.01) == []
        for bad in (0, -1):
            with pytest.raises(InvalidRequest):
                store.search(query, top_k=bad)

    def test_search_empty(self, store: VectorStore) -> None:
        assert store.search(basis(0), top_k=3) == []
        assert store.search(basis(0), top_k=3, filter={"a": 1}) == []

    def test_scores_are_cosine(self, store: VectorStore) -> None:
        vectors = rand_vectors(10, seed=3) * 7.0
        store.upsert([Chunk(f"c{i}", "d", "t") for i in range(10)], vectors)
        query = rand_vectors(1, seed=4)[0]
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        expected = unit @ (query / np.linalg.norm(query))
        for hit in store.search(query, top_k=10):
            assert hit.score == pytest.approx(float(expected[int(hit.chunk.id[1:])]), abs=1e-4)

    @pytest.fixture
    def filter_store(self, store: VectorStore) -> VectorStore:
        chunks = [Chunk(f"f{i:02d}", "d", f"t{i}", md) for i, md in enumerate(FILTER_METADATA)]
        store.upsert(chunks, rand_vectors(len(chunks), seed=11))
        return store

    def test_filter_operators(self, filter_store: VectorStore) -> None:
        for flt in FILTERS:
            expected = [f"f{i:02d}" for i, md in enumerate(FILTER_METADATA) if matches(flt, md)]
            hits = filter_store.search(basis(0), top_k=50, filter=flt)
            assert sorted(ids(hits)) == expected, flt

    def test_filter_semantics_spot_checks(self, filter_store: VectorStore) -> None:
        def found(flt: dict[str, Any]) -> list[int]:
            return sorted(int(h.chunk.id[1:]) for h in filter_store.search(basis(0), 50, flt))

        assert found({"page": 4}) == [3]  # 4 == 4.0
        assert found({"draft": 1}) == [7]  # True is not 1
        assert found({"tag": {"$ne": "x"}}) == [0, 1, 2, 3, 4, 6, 7, 9]  # missing matches $ne
        assert found({"lang": {"$gt": 0}}) == []  # strings never compare with numbers

    def test_invalid_filters(self, store: VectorStore) -> None:
        bad_filters: list[Any] = [
            {"a": {"$regex": "x"}},
            {"$or": []},
            {"a": {"$in": []}},
            {"a": {"$gt": "x"}},
        ]
        for bad in bad_filters:
            with pytest.raises(FilterError):
                store.search(basis(0), top_k=3, filter=bad)
            with pytest.raises(FilterError):
                store.list_documents(filter=bad)

    def test_selective_filter_fills_top_k(self, store: VectorStore) -> None:
        n = 600
        vectors = rand_vectors(n, seed=21)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        query = rand_vectors(1, seed=22)[0]
        # The matching chunks are the ones least similar to the query: post-filtering fails.
        order = np.argsort(vectors @ query)
        rare = {int(i) for i in order[:15]}
        chunks = [Chunk(f"c{i:04d}", "d", "t", {"rare": i in rare}) for i in range(n)]
        store.upsert(chunks, vectors)
        hits = store.search(query, top_k=10, filter={"rare": True})
        assert len(hits) == 10
        assert all(h.chunk.metadata["rare"] is True for h in hits)
        expected = sorted(rare, key=lambda i: -float(vectors[i] @ query))[:10]
        assert ids(hits) == [f"c{i:04d}" for i in expected]

    # -- documents --------------------------------------------------------------------------

    def _documents(self, store: VectorStore) -> None:
        for i, (lang, src) in enumerate([("en", "b.md"), ("fr", "a.md"), ("en", "c.md")]):
            rec, chunks = make_doc(f"doc{i}", i + 1, {"lang": lang, "n": i}, source=src)
            store.replace_document(rec, chunks, rand_vectors(i + 1, seed=i))

    def test_list_documents(self, store: VectorStore) -> None:
        self._documents(store)
        assert [r.source for r in store.list_documents()] == ["a.md", "b.md", "c.md"]
        assert [r.chunk_count for r in store.list_documents()] == [2, 1, 3]
        assert [r.source for r in store.list_documents({"lang": "en"})] == ["b.md", "c.md"]
        assert [r.source for r in store.list_documents(limit=2, offset=1)] == ["b.md", "c.md"]
        assert [r.source for r in store.list_documents(limit=1)] == ["a.md"]
        assert store.list_documents(offset=5) == []
        assert [r.id for r in store.list_documents({"source": "c.md"})] == ["doc2"]
        assert [r.id for r in store.list_documents({"document_id": "doc1"})] == ["doc1"]
        assert [r.id for r in store.list_documents({"n": {"$gte": 1}}, limit=1)] == ["doc1"]
        assert store.count_documents() == 3
        assert store.count_documents({"lang": "fr"}) == 1
        assert store.count_documents({"lang": "xx"}) == 0
        record = store.get_document("doc1")
        assert record is not None
        assert (record.source, record.metadata) == ("a.md", {"lang": "fr", "n": 1})
        assert store.get_document("missing") is None

    def test_count_and_chunks(self, store: VectorStore) -> None:
        self._documents(store)
        assert store.count() == 6
        rec, chunks = make_doc("shuffled", 12)
        order = list(range(12))
        random.Random(1).shuffle(order)
        store.replace_document(rec, [chunks[i] for i in order], rand_vectors(12)[order])
        assert [c.id for c in store.get_chunks("shuffled")] == [c.id for c in chunks]
        assert store.get_chunks("shuffled") == chunks
        assert store.get_chunks("missing") == []
        every = store.all_chunks()
        assert len(every) == store.count() == 18
        assert {c.document_id for c in every} == {"doc0", "doc1", "doc2", "shuffled"}

    # -- persistence ------------------------------------------------------------------------

    def test_persistence(self, client: VectorStoreClient, data_dir: Path) -> None:
        store = client.create_collection(NAME, MODEL, DIM)
        self._documents(store)
        vectors = rand_vectors(2, seed=1)
        store.delete_document("doc0")
        store.persist()
        reopened = self.reopen(client, data_dir)
        try:
            again = reopened.get_collection(NAME)
            assert (again.embedding_model, again.dimension) == (MODEL, DIM)
            assert again.count() == 5
            assert [r.id for r in again.list_documents()] == ["doc1", "doc2"]
            hit = again.search(vectors[1], top_k=1)[0]
            assert hit.chunk.id == "doc1:00001"
            assert hit.score == pytest.approx(1.0, abs=1e-5)
            with pytest.raises(EmbeddingMismatch):
                reopened.get_or_create_collection(NAME, "other", DIM)
        finally:
            reopened.close()
