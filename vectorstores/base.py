"""The vector store contract shared by every backend.

Semantics every backend follows (tested by ``tests/vectorstores/contract.py``):

* Vectors are L2-normalised float32 rows; scores are cosine similarity, higher is better.
* ``search`` returns hits ordered by score descending, ties broken by chunk id ascending.
* ``upsert`` with an existing chunk id replaces that chunk (text, metadata and vector).
* Deleting a missing chunk or document id is a no-op, never an error.
* A collection records its embedding model name and dimension when created; writing vectors of
  another dimension raises ``EmbeddingMismatch`` and stores nothing.
* ``replace_document`` is the unit of ingestion: it stores the document record and its chunks
  and removes the document's previous chunks, atomically where the backend allows (SQLite and
  memory do; Chroma writes the new chunks before removing stale ones, so a crash leaves the old
  or the new version searchable, never neither).
* Metadata values are str, int, float or bool (lists are not stored); the filter language is
  described in ``vectorstores/filters.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

# The domain types live in core; they are re-exported here for callers of the store API.
from core.types import Chunk, DocumentRecord, Hit, MetadataValue

__all__ = [
    "Chunk",
    "CollectionInfo",
    "DocumentRecord",
    "Filter",
    "Hit",
    "MetadataValue",
    "Vector",
    "VectorStore",
    "VectorStoreClient",
    "check_embedding",
    "check_vectors",
]

Vector = npt.NDArray[np.float32]
Filter = Mapping[str, Any]


@dataclass(frozen=True)
class CollectionInfo:
    """A collection's name, embedding model, dimension and size."""

    name: str
    embedding_model: str
    dimension: int
    chunk_count: int
    document_count: int


@runtime_checkable
class VectorStore(Protocol):
    """One collection of chunks, their vectors and their documents' records."""

    name: str
    embedding_model: str
    dimension: int
    supports_filters: bool

    def upsert(self, chunks: Sequence[Chunk], vectors: Vector) -> None:
        """Insert or replace chunks by id; ``vectors[i]`` belongs to ``chunks[i]``.

        Raises:
            EmbeddingMismatch: ``vectors`` has another dimension than the collection.
            InvalidRequest: lengths differ.
        """

    def replace_document(
        self, record: DocumentRecord, chunks: Sequence[Chunk], vectors: Vector
    ) -> None:
        """Store ``record`` and its chunks, removing every chunk it had before."""

    def delete(self, chunk_ids: Sequence[str]) -> None:
        """Delete chunks by id; missing ids are ignored."""

    def delete_document(self, document_id: str) -> bool:
        """Delete a document's record and all its chunks; False if it did not exist.

        Costs in proportion to the document's own chunks, not the collection's size.
        """

    def search(
        self,
        vector: Vector,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """Return up to ``top_k`` chunks most similar to ``vector``.

        The filter is applied inside the search, so ``top_k`` hits come back whenever that
        many chunks match. Hits scoring below ``score_threshold`` are left out.
        """

    def count(self) -> int:
        """Return the number of chunks stored."""

    def get_document(self, document_id: str) -> DocumentRecord | None:
        """Return a document's record, or None."""

    def list_documents(
        self, filter: Filter | None = None, limit: int | None = None, offset: int = 0
    ) -> list[DocumentRecord]:
        """Return document records ordered by source name, filtered on their metadata."""

    def count_documents(self, filter: Filter | None = None) -> int:
        """Return the number of documents matching ``filter``."""

    def get_chunks(self, document_id: str) -> list[Chunk]:
        """Return a document's chunks ordered by position (empty if unknown)."""

    def all_chunks(self) -> list[Chunk]:
        """Return every chunk of the collection (used to rebuild derived indexes)."""

    def version(self) -> str | None:
        """Return a token that changes with every committed write, or None if none is kept.

        Meant for derived state (the keyword index) in several processes: it must be cheap
        (one indexed row, read on every keyword search) and it also changes when the
        collection is deleted and recreated under the same name. Backends without such a
        counter return None; callers then derive a stamp from the document records.
        """

    def persist(self) -> None:
        """Make everything written so far durable (a no-op where writes already are)."""

    def close(self) -> None:
        """Release files and connections; the object is unusable afterwards."""


@runtime_checkable
class VectorStoreClient(Protocol):
    """A backend's set of named collections, under one data directory or server."""

    backend: str

    def create_collection(self, name: str, embedding_model: str, dimension: int) -> VectorStore:
        """Create a collection; raises ``CollectionExists`` if it exists."""

    def get_collection(self, name: str) -> VectorStore:
        """Open an existing collection; raises ``CollectionNotFound``."""

    def get_or_create_collection(
        self, name: str, embedding_model: str, dimension: int
    ) -> VectorStore:
        """Open a collection, creating it first if needed.

        Raises:
            EmbeddingMismatch: it exists with another model or dimension.
        """

    def list_collections(self) -> list[CollectionInfo]:
        """Return every collection, ordered by name."""

    def delete_collection(self, name: str) -> bool:
        """Delete a collection and its data; False if it did not exist."""

    def close(self) -> None:
        """Close every open collection."""


def check_vectors(vectors: Vector, n: int, dimension: int, collection: str) -> Vector:
    """Validate and normalise a batch of vectors before it is written.

    Args:
        vectors: Array of shape ``(n, dimension)``.
        n: Expected number of rows.
        dimension: The collection's dimension.
        collection: Collection name, for the error message.

    Returns:
        The vectors as a C-contiguous float32 array with unit-length rows.

    Raises:
        EmbeddingMismatch: wrong dimension.
        InvalidRequest: wrong number of rows.
    """
    from core.errors import EmbeddingMismatch, InvalidRequest

    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.shape[1] != dimension:
        raise EmbeddingMismatch(
            f"collection '{collection}' holds {dimension}-dimensional vectors; got "
            f"{arr.shape[1]}. Use the embedding model the collection was created with.",
            {"expected_dimension": dimension, "got_dimension": int(arr.shape[1])},
        )
    if arr.shape[0] != n:
        raise InvalidRequest(f"{n} chunks but {arr.shape[0]} vectors")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: Vector = arr / norms
    return normalised


def check_embedding(name: str, model: str, dimension: int, want_model: str, want_dim: int) -> None:
    """Raise ``EmbeddingMismatch`` unless a collection's model and dimension are the wanted ones.

    The one check of its kind: stores opening a collection, the ingestion pipeline and the
    app's collection service all call it, so a mismatch reads the same wherever it is found.
    """
    from core.errors import EmbeddingMismatch

    if model != want_model or dimension != want_dim:
        raise EmbeddingMismatch(
            f"collection '{name}' was created for {model} ({dimension} dimensions), not "
            f"{want_model} ({want_dim} dimensions); use that model or another collection",
            {
                "collection": name,
                "embedding_model": model,
                "dimension": dimension,
                "requested_model": want_model,
                "requested_dimension": want_dim,
            },
        )
