"""Named collections: create, open, list and delete them."""

from __future__ import annotations

import threading
from collections.abc import Callable

from core.errors import CollectionNotFound, Conflict
from ingest.base import Embedder
from vectorstores.base import CollectionInfo, VectorStore, VectorStoreClient, check_embedding

DEFAULT_COLLECTION = "default"


class CollectionService:
    """Keeps one open ``VectorStore`` per collection of the configured backend."""

    def __init__(self, client: VectorStoreClient, embedder: Embedder) -> None:
        self._client = client
        self._embedder = embedder
        self._open: dict[str, VectorStore] = {}
        self._lock = threading.Lock()
        # Called with a collection's name once it is deleted, to remove what was derived
        # from it (its keyword index files).
        self.on_delete: list[Callable[[str], None]] = []

    def ensure_default(self) -> None:
        """Create the ``default`` collection if it does not exist yet."""
        self._open[DEFAULT_COLLECTION] = self._client.get_or_create_collection(
            DEFAULT_COLLECTION, self._embedder.model_name, self._embedder.dimension
        )

    def create(self, name: str) -> VectorStore:
        """Create a collection for the server's embedding model."""
        with self._lock:
            store = self._client.create_collection(
                name, self._embedder.model_name, self._embedder.dimension
            )
            self._open[name] = store
            return store

    def get(self, name: str) -> VectorStore:
        """Return an open collection; raises ``CollectionNotFound``."""
        store = self._open.get(name)
        if store is not None:
            return store
        with self._lock:
            if name not in self._open:
                try:
                    store = self._client.get_collection(name)
                except CollectionNotFound as exc:
                    names = ", ".join(c.name for c in self._client.list_collections())
                    raise CollectionNotFound(
                        f"collection '{name}' does not exist; existing collections: {names}",
                        {"collection": name},
                    ) from exc
                check_embedding(
                    name,
                    store.embedding_model,
                    store.dimension,
                    self._embedder.model_name,
                    self._embedder.dimension,
                )
                self._open[name] = store
            return self._open[name]

    def info(self, name: str) -> CollectionInfo:
        """Return a collection's size and model."""
        store = self.get(name)
        return CollectionInfo(
            name=name,
            embedding_model=store.embedding_model,
            dimension=store.dimension,
            chunk_count=store.count(),
            document_count=store.count_documents(),
        )

    def list(self) -> list[CollectionInfo]:
        """Return every collection, ordered by name."""
        return self._client.list_collections()

    def delete(self, name: str) -> None:
        """Delete a collection and everything in it; ``default`` can only be emptied."""
        if name == DEFAULT_COLLECTION:
            raise Conflict(
                "the 'default' collection always exists and cannot be deleted; "
                "delete its documents instead"
            )
        with self._lock:
            self._open.pop(name, None)
            if not self._client.delete_collection(name):
                raise CollectionNotFound(f"collection '{name}' does not exist")
        for listener in self.on_delete:
            listener(name)

    def close(self) -> None:
        """Close every open collection."""
        self._open.clear()
        self._client.close()
