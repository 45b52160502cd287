"""The in-memory reference backend: numpy, exact search, nothing persisted.

It is the executable specification of ``vectorstores.base``: every other backend must behave
like it under ``tests/vectorstores/contract.py``. Vectors live in one growing float32 matrix;
a deleted row is filled with the last row, so deletes cost in proportion to the chunks deleted.
A lock per collection makes each call atomic.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import CollectionExists, CollectionNotFound
from core.types import Chunk, DocumentRecord, Hit
from vectorstores.base import CollectionInfo, Filter, Vector, check_embedding, check_vectors
from vectorstores.common import (
    check_dimension,
    check_top_k,
    chunk_order,
    clean_chunks,
    document_filter_view,
    page,
    prepare_query,
    sort_hits,
    stamp_record,
    validate_collection_name,
)
from vectorstores.filters import compile_filter


class MemoryStore:
    """One in-memory collection (see the module docstring)."""

    supports_filters = True

    def __init__(self, name: str, embedding_model: str, dimension: int) -> None:
        """Create an empty collection.

        Args:
            name: Collection name.
            embedding_model: Name of the model whose vectors the collection holds.
            dimension: Vector dimension.
        """
        self.name = name
        self.embedding_model = embedding_model
        self.dimension = dimension
        self._lock = threading.RLock()
        self._matrix = np.zeros((16, dimension), dtype=np.float32)
        self._ids: list[str] = []  # row -> chunk id
        self._rows: dict[str, int] = {}  # chunk id -> row
        self._chunks: dict[str, Chunk] = {}
        self._by_doc: dict[str, set[str]] = {}
        self._records: dict[str, DocumentRecord] = {}

    # -- writes -------------------------------------------------------------------------

    def _append(self, chunk: Chunk, vector: Vector) -> None:
        row = self._rows.get(chunk.id)
        if row is None:
            row = len(self._ids)
            if row == self._matrix.shape[0]:
                grown = np.zeros((row * 2, self.dimension), dtype=np.float32)
                grown[:row] = self._matrix
                self._matrix = grown
            self._ids.append(chunk.id)
            self._rows[chunk.id] = row
        else:
            old_doc = self._chunks[chunk.id].document_id
            self._by_doc[old_doc].discard(chunk.id)
            if not self._by_doc[old_doc]:
                del self._by_doc[old_doc]
        self._matrix[row] = vector
        self._chunks[chunk.id] = chunk
        self._by_doc.setdefault(chunk.document_id, set()).add(chunk.id)

    def _remove(self, chunk_id: str) -> None:
        row = self._rows.pop(chunk_id, None)
        if row is None:
            return
        last = len(self._ids) - 1
        if row != last:
            moved = self._ids[last]
            self._matrix[row] = self._matrix[last]
            self._ids[row] = moved
            self._rows[moved] = row
        self._ids.pop()
        chunk = self._chunks.pop(chunk_id)
        siblings = self._by_doc[chunk.document_id]
        siblings.discard(chunk_id)
        if not siblings:
            del self._by_doc[chunk.document_id]

    def _sync_counts(self, document_ids: set[str]) -> None:
        for doc_id in document_ids:
            record = self._records.get(doc_id)
            if record is not None:
                n = len(self._by_doc.get(doc_id, ()))
                self._records[doc_id] = dataclasses.replace(record, chunk_count=n)

    def upsert(self, chunks: Sequence[Chunk], vectors: Vector) -> None:
        """Insert or replace chunks by id (see ``VectorStore.upsert``)."""
        cleaned = clean_chunks(chunks)
        arr = check_vectors(vectors, len(cleaned), self.dimension, self.name)
        with self._lock:
            touched = {c.document_id for c in cleaned}
            for chunk, vector in zip(cleaned, arr, strict=True):
                old = self._chunks.get(chunk.id)
                if old is not None:
                    touched.add(old.document_id)
                self._append(chunk, vector)
            self._sync_counts(touched)

    def replace_document(
        self, record: DocumentRecord, chunks: Sequence[Chunk], vectors: Vector
    ) -> None:
        """Store ``record`` and its chunks, removing its previous chunks, atomically."""
        cleaned = clean_chunks(chunks, record.id)
        arr = check_vectors(vectors, len(cleaned), self.dimension, self.name)
        with self._lock:
            touched = {record.id}
            new_ids = {c.id for c in cleaned}
            for chunk_id in list(self._by_doc.get(record.id, ())):
                if chunk_id not in new_ids:
                    self._remove(chunk_id)
            for chunk, vector in zip(cleaned, arr, strict=True):
                old = self._chunks.get(chunk.id)
                if old is not None:
                    touched.add(old.document_id)
                self._append(chunk, vector)
            self._records[record.id] = stamp_record(
                record, self._records.get(record.id), len(cleaned)
            )
            self._sync_counts(touched)

    def delete(self, chunk_ids: Sequence[str]) -> None:
        """Delete chunks by id; missing ids are ignored."""
        with self._lock:
            touched = {self._chunks[c].document_id for c in chunk_ids if c in self._chunks}
            for chunk_id in chunk_ids:
                self._remove(chunk_id)
            self._sync_counts(touched)

    def delete_document(self, document_id: str) -> bool:
        """Delete a document's record and chunks; False if neither existed."""
        with self._lock:
            chunk_ids = list(self._by_doc.get(document_id, ()))
            for chunk_id in chunk_ids:
                self._remove(chunk_id)
            existed = self._records.pop(document_id, None) is not None
            return existed or bool(chunk_ids)

    # -- reads --------------------------------------------------------------------------

    def search(
        self,
        vector: Vector,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """Exact cosine search; see ``VectorStore.search``."""
        check_top_k(top_k)
        query = prepare_query(vector, self.dimension, self.name)[0]
        predicate = compile_filter(filter)
        with self._lock:
            n = len(self._ids)
            scores = self._matrix[:n] @ query
            if filter:
                keep = np.fromiter(
                    (predicate(self._chunks[i].metadata) for i in self._ids), dtype=bool, count=n
                )
                rows = np.flatnonzero(keep)
            else:
                rows = np.arange(n)
            if score_threshold is not None:
                rows = rows[scores[rows] >= score_threshold]
            if len(rows) > top_k:
                # Keep every row tied with the k-th score so ties can be broken by id.
                kth = np.partition(scores[rows], len(rows) - top_k)[len(rows) - top_k]
                rows = rows[scores[rows] >= kth]
            hits = [Hit(self._chunks[self._ids[r]], float(scores[r])) for r in rows]
        return sort_hits(hits, top_k, score_threshold)

    def count(self) -> int:
        """Return the number of chunks stored."""
        with self._lock:
            return len(self._ids)

    def get_document(self, document_id: str) -> DocumentRecord | None:
        """Return a document's record, or None."""
        with self._lock:
            return self._records.get(document_id)

    def _documents(self, filter: Filter | None) -> list[DocumentRecord]:
        predicate = compile_filter(filter)
        with self._lock:
            records = list(self._records.values())
        kept = [r for r in records if predicate(document_filter_view(r))]
        kept.sort(key=lambda r: (r.source, r.id))
        return kept

    def list_documents(
        self, filter: Filter | None = None, limit: int | None = None, offset: int = 0
    ) -> list[DocumentRecord]:
        """Return records ordered by source, filtered on metadata, ``source``, ``document_id``."""
        return page(self._documents(filter), limit, offset)

    def count_documents(self, filter: Filter | None = None) -> int:
        """Return the number of documents matching ``filter``."""
        return len(self._documents(filter))

    def get_chunks(self, document_id: str) -> list[Chunk]:
        """Return a document's chunks ordered by position, then id."""
        with self._lock:
            chunks = [self._chunks[c] for c in self._by_doc.get(document_id, ())]
        return sorted(chunks, key=chunk_order)

    def all_chunks(self) -> list[Chunk]:
        """Return every chunk, ordered by document id, position, id."""
        with self._lock:
            chunks = list(self._chunks.values())
        return sorted(chunks, key=lambda c: (c.document_id, *chunk_order(c)))

    def version(self) -> None:
        """Return None: no write counter is kept (nothing else shares it)."""
        return None

    def persist(self) -> None:
        """Do nothing: the memory backend keeps nothing."""

    def close(self) -> None:
        """Do nothing: the data stays with the client until the collection is deleted."""


class MemoryClient:
    """A set of in-memory collections; everything is lost when the process ends."""

    backend = "memory"

    def __init__(self, data_dir: Path | None = None, **options: Any) -> None:
        """Create an empty client.

        Args:
            data_dir: Ignored; accepted so every backend is built the same way.
            **options: Ignored.
        """
        self._lock = threading.Lock()
        self._stores: dict[str, MemoryStore] = {}

    def create_collection(self, name: str, embedding_model: str, dimension: int) -> MemoryStore:
        """Create a collection; raises ``CollectionExists`` if it exists."""
        validate_collection_name(name)
        check_dimension(dimension)
        with self._lock:
            if name in self._stores:
                raise CollectionExists(f"collection '{name}' exists already", {"name": name})
            store = MemoryStore(name, embedding_model, dimension)
            self._stores[name] = store
            return store

    def get_collection(self, name: str) -> MemoryStore:
        """Return a collection; raises ``CollectionNotFound``."""
        with self._lock:
            store = self._stores.get(name)
        if store is None:
            raise CollectionNotFound(f"collection '{name}' does not exist", {"name": name})
        return store

    def get_or_create_collection(
        self, name: str, embedding_model: str, dimension: int
    ) -> MemoryStore:
        """Return a collection, creating it first; ``EmbeddingMismatch`` if it differs."""
        validate_collection_name(name)
        check_dimension(dimension)
        with self._lock:
            store = self._stores.get(name)
            if store is None:
                store = MemoryStore(name, embedding_model, dimension)
                self._stores[name] = store
                return store
        check_embedding(name, store.embedding_model, store.dimension, embedding_model, dimension)
        return store

    def list_collections(self) -> list[CollectionInfo]:
        """Return every collection, ordered by name."""
        with self._lock:
            stores = sorted(self._stores.values(), key=lambda s: s.name)
        return [
            CollectionInfo(s.name, s.embedding_model, s.dimension, s.count(), s.count_documents())
            for s in stores
        ]

    def delete_collection(self, name: str) -> bool:
        """Delete a collection; False if it did not exist."""
        with self._lock:
            return self._stores.pop(name, None) is not None

    def close(self) -> None:
        """Do nothing; collections stay until the client is dropped."""
