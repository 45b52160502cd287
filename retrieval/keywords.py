"""One BM25 keyword index per open collection, kept in step with the vector store.

See ``retrieval.bm25`` for how staleness is detected and how the index is persisted.
``KeywordIndexes`` owns the per-collection ``KeywordIndex`` objects: it creates them on first use,
replaces one whose collection was deleted and recreated, and rebuilds indexes in the
background after local writes and at start-up, so searches rarely wait for a rebuild.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from core.errors import CollectionNotFound, RagError
from core.types import Hit
from retrieval.bm25 import KeywordIndex, KeywordTokenizer
from vectorstores.base import Filter, VectorStore

StoreLookup = Callable[[str], VectorStore]
"""Returns the open store of a collection by name (raises ``CollectionNotFound``)."""

log = logging.getLogger(__name__)


class KeywordIndexes:
    """The keyword indexes of a set of open collections."""

    def __init__(
        self,
        stores: StoreLookup,
        tokenizer: KeywordTokenizer,
        folder: Path | None,
        *,
        check_interval_s: float = 1.0,
    ) -> None:
        """Configure the indexes.

        Args:
            stores: Opens a collection's store by name (``CollectionService.get``).
            tokenizer: Tokenizes chunks and queries.
            folder: Root of the persisted indexes (``data_dir/bm25``); one sub-folder per
                collection. None keeps them in memory.
            check_interval_s: See ``KeywordIndex``.
        """
        self._stores = stores
        self._tokenizer = tokenizer
        self._folder = folder
        self._interval = check_interval_s
        self._indexes: dict[str, KeywordIndex] = {}
        self._lock = threading.Lock()
        self._pending: dict[str, Future[None]] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bm25")
        self._closed = False

    def get(self, collection: str) -> KeywordIndex:
        """Return the collection's index (bound to its open store), creating it if needed."""
        store = self._stores(collection)
        with self._lock:
            index = self._indexes.get(collection)
            if index is None or index.store is not store:
                folder = self._folder / collection if self._folder is not None else None
                index = KeywordIndex(
                    store, self._tokenizer, folder, check_interval_s=self._interval
                )
                self._indexes[collection] = index
            return index

    def search(
        self, collection: str, query: str, top_k: int, filter: Filter | None = None
    ) -> list[Hit]:
        """BM25 search of a collection, after bringing its index up to date.

        A collection found deleted (through another replica) loses its index files here too.
        """
        try:
            return self.get(collection).search(query, top_k, filter)
        except CollectionNotFound:
            self.drop(collection)
            raise

    def unknown_share(self, collection: str, text: str) -> float:
        """The share of ``text``'s distinct keywords absent from the collection's index."""
        return self.get(collection).refresh(force_check=False).unknown_share(self._tokenizer(text))

    def changed(self, collection: str, *, rebuild: bool = True) -> None:
        """Report a write to a collection: mark its index stale and rebuild it in the background.

        Searches that come before the background rebuild ends wait for it (or rebuild
        themselves), so they never see the old index.
        """
        with self._lock:
            index = self._indexes.get(collection)
        if index is not None:
            index.mark_stale()
        if rebuild:
            self._schedule(collection)

    def purge(self, collection: str) -> None:
        """After a delete: rebuild the collection's index now, leaving no old copy on disk."""
        self.get(collection).purge()

    def drop(self, collection: str) -> None:
        """After a collection is deleted: forget its index and delete its files at once."""
        with self._lock:
            self._indexes.pop(collection, None)
            pending = self._pending.pop(collection, None)
        if pending is not None and not pending.cancel():
            pending.result()  # running: it may still write a version; _refresh logs failures
        if self._folder is not None:
            shutil.rmtree(self._folder / collection, ignore_errors=True)

    def warm(self, collections: Iterable[str]) -> None:
        """Load or rebuild the indexes of ``collections`` in the background (start-up).

        Persisted indexes of collections not in ``collections`` (deleted since) are removed.
        """
        names = list(collections)
        if self._folder is not None and self._folder.is_dir():
            for entry in self._folder.iterdir():
                if entry.is_dir() and entry.name not in names:
                    shutil.rmtree(entry, ignore_errors=True)
        for name in names:
            self._schedule(name)

    def _schedule(self, collection: str) -> None:
        with self._lock:
            if self._closed:
                return
            pending = self._pending.get(collection)
            if pending is not None and not pending.running() and not pending.done():
                return  # a refresh is queued already and will see this write
            self._pending[collection] = self._executor.submit(self._refresh, collection)

    def _refresh(self, collection: str) -> None:
        try:
            self.get(collection).refresh()
        except RagError as exc:  # deleted meanwhile, backend down: the next search retries
            log.info("keyword index of '%s' not refreshed: %s", collection, exc.message)
        except Exception:
            log.exception("keyword index of '%s' failed to refresh", collection)

    def wait(self) -> None:
        """Block until the background refreshes queued so far have finished (tests, CLI)."""
        with self._lock:
            pending = list(self._pending.values())
        for future in pending:
            future.result()

    def close(self) -> None:
        """Stop the background refreshes (queued ones are dropped)."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
