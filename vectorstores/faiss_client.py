"""The FAISS backend's client: one folder per collection under ``data_dir/faiss``.

Creating a collection initialises its SQLite database in a hidden temporary folder and renames
it into place, and deleting renames the folder away before removing it, so an interrupted
create or delete never leaves a half collection (leftovers are swept on the next start). See
``faiss_store`` for the storage, durability and threading design.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from core.errors import CollectionExists, CollectionNotFound, ConfigurationError
from vectorstores import faiss_sqlite as db
from vectorstores.base import CollectionInfo, check_embedding
from vectorstores.common import check_dimension, validate_collection_name
from vectorstores.faiss_index import IndexKind
from vectorstores.faiss_store import DB_FILE, FaissStore, fsync_dir, lock_folder


class FaissClient:
    """The collections of the FAISS backend, one folder each under ``data_dir/faiss``."""

    backend = "faiss"

    def __init__(
        self,
        data_dir: Path,
        index: IndexKind = "flat",
        hnsw_m: int = 32,
        hnsw_ef_search: int = 64,
        **store_options: Any,
    ) -> None:
        """Open the backend's root folder, creating it if needed.

        Args:
            data_dir: The server's data directory.
            index: ``"flat"`` or ``"hnsw"`` (a collection's index is rebuilt when it changes).
            hnsw_m: HNSW graph degree.
            hnsw_ef_search: HNSW search breadth.
            **store_options: ``tombstone_ratio``, ``autosave_changes``, ``build_threads``,
                ``lock_wait_s`` (see ``FaissStore``).

        Raises:
            ConfigurationError: an option is invalid or unknown.
        """
        if index not in ("flat", "hnsw") or hnsw_m < 2 or hnsw_ef_search < 1:
            raise ConfigurationError(
                f"faiss options: index must be flat or hnsw, hnsw_m >= 2, hnsw_ef_search >= 1; "
                f"got {index!r}, {hnsw_m}, {hnsw_ef_search}"
            )
        unknown = set(store_options) - {
            "tombstone_ratio",
            "autosave_changes",
            "build_threads",
            "lock_wait_s",
        }
        if unknown:
            raise ConfigurationError(f"unknown faiss options: {sorted(unknown)}")
        self.root = Path(data_dir) / "faiss"
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob(".*"):  # interrupted creates and deletes
            shutil.rmtree(leftover, ignore_errors=True)
        self._options: dict[str, Any] = {
            "index": index,
            "hnsw_m": hnsw_m,
            "hnsw_ef_search": hnsw_ef_search,
            **store_options,
        }
        self._lock = threading.RLock()
        self._stores: dict[str, FaissStore] = {}

    def _folder(self, name: str) -> Path | None:
        try:
            validate_collection_name(name)
        except Exception:
            return None
        folder = self.root / name
        return folder if (folder / DB_FILE).exists() else None

    def create_collection(self, name: str, embedding_model: str, dimension: int) -> FaissStore:
        """Create a collection; raises ``CollectionExists`` if it exists."""
        validate_collection_name(name)
        check_dimension(dimension)
        with self._lock:
            if self._folder(name) is not None:
                raise CollectionExists(f"collection '{name}' exists already", {"name": name})
            tmp = self.root / f".new-{name}-{uuid.uuid4().hex}"
            tmp.mkdir()
            conn = db.connect(tmp / DB_FILE)
            meta = {
                "name": name,
                "embedding_model": embedding_model,
                "dimension": str(dimension),
                "created": repr(time.time()),
                "uuid": uuid.uuid4().hex,
            }
            try:
                db.init_schema(conn, meta)
            finally:
                conn.close()
            shutil.rmtree(self.root / name, ignore_errors=True)  # a folder without a database
            os.replace(tmp, self.root / name)
            fsync_dir(self.root)
            return self._open(name)

    def _open(self, name: str) -> FaissStore:
        store = self._stores.get(name)
        if store is None or store.closed:
            store = FaissStore(self.root / name, **self._options)
            self._stores[name] = store
        return store

    def get_collection(self, name: str) -> FaissStore:
        """Open a collection; raises ``CollectionNotFound``."""
        with self._lock:
            if self._folder(name) is None:
                raise CollectionNotFound(f"collection '{name}' does not exist", {"name": name})
            return self._open(name)

    def get_or_create_collection(
        self, name: str, embedding_model: str, dimension: int
    ) -> FaissStore:
        """Open a collection, creating it first; ``EmbeddingMismatch`` if it differs."""
        validate_collection_name(name)
        check_dimension(dimension)
        with self._lock:
            if self._folder(name) is None:
                return self.create_collection(name, embedding_model, dimension)
            store = self._open(name)
        check_embedding(name, store.embedding_model, store.dimension, embedding_model, dimension)
        return store

    def list_collections(self) -> list[CollectionInfo]:
        """Return every collection, ordered by name (reads SQLite only)."""
        infos: list[CollectionInfo] = []
        with self._lock:
            for folder in sorted(self.root.iterdir()):
                if self._folder(folder.name) is None:
                    continue
                conn = db.connect(folder / DB_FILE)
                try:
                    meta = db.read_meta(conn)
                    infos.append(
                        CollectionInfo(
                            name=folder.name,
                            embedding_model=meta["embedding_model"],
                            dimension=int(meta["dimension"]),
                            chunk_count=db.count_chunks(conn),
                            document_count=db.count_documents(conn, None),
                        )
                    )
                finally:
                    conn.close()
        return infos

    def delete_collection(self, name: str) -> bool:
        """Delete a collection and its folder; False if it did not exist."""
        with self._lock:
            folder = self._folder(name)
            if folder is None:
                return False
            store = self._stores.pop(name, None)
            if store is not None:
                store.close()
            os.close(lock_folder(folder))  # refuse while another process has it open
            trash = self.root / f".trash-{name}-{uuid.uuid4().hex}"
            os.replace(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)
            return True

    def close(self) -> None:
        """Close every open collection."""
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()
