"""The FAISS backend, the default: SQLite holds the truth, a FAISS index makes search fast.

Layout: one folder per collection, ``data_dir/faiss/<name>/``, holding ``store.sqlite3``
(chunks, vectors, metadata index, document records, collection metadata; see
``faiss_sqlite``), ``index-<uuid>.faiss`` (the ``IndexIDMap2``; see ``faiss_index``) and
``lock``.

Deletes: the SQLite rows go at once (found through the ``document_id`` index); in the FAISS
index the ids become tombstones that searches skip, so a delete costs in proportion to its own
chunks. Past ``tombstone_ratio`` of the index, a flat index purges them (one ``remove_ids``)
and an HNSW index, which cannot drop nodes, is rebuilt from its live vectors (searches go on
against the old index meanwhile) and saved. A saved flat index holds no tombstones.

Filters: the metadata index (``chunk_meta``) turns a filter into the set of matching row ids,
which FAISS receives as an ``IDSelectorBatch`` in the search parameters, so ``top_k`` hits
come back whenever that many chunks match (see ``faiss_index`` for HNSW's exact fallback).

Durability: every write (``upsert``, ``replace_document``, ``delete``, ``delete_document``) is
one SQLite transaction (WAL, ``synchronous=FULL``), and its vectors are stored in SQLite too.
The index file is only a cache of SQLite, written atomically (temp file, fsync, ``os.replace``)
every ``autosave_changes`` changed chunks, on ``persist()`` and on ``close()``. Row ids are
never reused and a row's vector never changes, so opening a collection compares the index's id
set with SQLite's: ids SQLite lacks are removed (flat; HNSW keeps them as tombstones, which
they may already have been when the file was saved), rows the index lacks are added from their
stored vectors, and a missing or unreadable file, or one built with other
settings, is rebuilt. A SIGKILL at any moment therefore leaves SQLite at the last committed
write and the index repaired to match on the next open; ``repair_report`` says what was done
(and it is logged as a warning).

Threading: one writer at a time per collection (a lock), and one process per collection (an
``flock`` on ``lock``). A write prepares its SQLite transaction without blocking searches; only
the ``COMMIT`` and the in-memory index update run under the exclusive side of a readers-writer
lock, so searches wait milliseconds, not for a batch. Searches share the lock, each using a
pooled SQLite connection, and run FAISS on one OpenMP thread (``omp_set_num_threads`` is per
thread); index builds use ``build_threads``. On a flat index, unfiltered searches that arrive
while one is running are coalesced (``core.coalesce``) into one FAISS call for all of them,
which reads the stored vectors once per batch instead of once per query.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from core.coalesce import Coalescer
from core.errors import (
    BackendUnavailable,
    InvalidRequest,
    StoreLocked,
)
from core.types import Chunk, DocumentRecord, Hit
from vectorstores import faiss_sqlite as db
from vectorstores.base import Filter, Vector, check_vectors
from vectorstores.common import (
    check_top_k,
    clean_chunks,
    prepare_query,
    sort_hits,
    stamp_record,
)
from vectorstores.faiss_index import FaissIndex, Ids, IndexKind
from vectorstores.filters import validate_filter
from vectorstores.locks import RWLock

logger = logging.getLogger(__name__)

DB_FILE = "store.sqlite3"
LOCK_FILE = "lock"
LOCK_POLL_S = 0.05
_NO_IDS: Ids = np.zeros(0, dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class RepairReport:
    """What opening a collection did to bring its index in line with SQLite.

    Attributes:
        reason: Why the index was rebuilt, or ``""``.
        rebuilt: The index was rebuilt from SQLite's vectors.
        added: Rows the index file lacked, added from SQLite.
        removed: Ids SQLite no longer has, removed from a flat index.
        tombstoned: Ids SQLite no longer has, marked as tombstones in an HNSW index.
    """

    reason: str = ""
    rebuilt: bool = False
    added: int = 0
    removed: int = 0
    tombstoned: int = 0

    @property
    def repaired(self) -> bool:
        """Whether the index file disagreed with SQLite (tombstones alone do not count)."""
        return self.rebuilt or bool(self.added) or bool(self.removed)


@dataclasses.dataclass
class _Change:
    removed: Sequence[int] = ()
    added: Ids = dataclasses.field(default_factory=lambda: _NO_IDS)
    vectors: Vector = dataclasses.field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    result: Any = None


def lock_folder(folder: Path, wait_s: float = 0.0) -> int:
    """Take the collection's process lock, waiting up to ``wait_s`` for another process.

    A server restarted while the previous one is still shutting down waits here (logged once)
    instead of failing; after ``wait_s`` it raises ``StoreLocked``.
    """
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    logged = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if logged:
                logger.info("took the lock of collection folder %s", folder)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                break
        if not logged:
            logger.warning(
                "collection folder %s is open in another process (a server still stopping?); "
                "waiting up to %g s for it (RAG_VECTORSTORE__FAISS__LOCK_WAIT_S)",
                folder,
                wait_s,
            )
            logged = True
        time.sleep(LOCK_POLL_S)
    os.close(fd)
    waited = f" after waiting {wait_s:g} s" if wait_s > 0 else ""
    raise StoreLocked(
        f"collection folder {folder} is open in another process{waited}; the FAISS backend "
        "allows one process per collection (run one server worker)",
        {"folder": str(folder)},
    ) from None


def fsync_dir(path: Path) -> None:
    """Make a rename or create in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FaissStore:
    """One collection of the FAISS backend (see the module docstring)."""

    supports_filters = True

    def __init__(
        self,
        folder: Path,
        *,
        index: IndexKind = "flat",
        hnsw_m: int = 32,
        hnsw_ef_search: int = 64,
        tombstone_ratio: float = 0.2,
        autosave_changes: int = 10_000,
        build_threads: int | None = None,
        lock_wait_s: float = 0.0,
    ) -> None:
        """Open a collection folder created by ``FaissClient``, repairing its index if needed.

        Args:
            folder: The collection's folder.
            index: ``"flat"`` (exact) or ``"hnsw"``.
            hnsw_m: HNSW graph degree.
            hnsw_ef_search: HNSW search breadth.
            tombstone_ratio: Compact (flat: purge, HNSW: rebuild) when tombstones exceed this
                fraction of the index.
            autosave_changes: Write the index file after this many changed chunks.
            build_threads: OpenMP threads for adding to and rebuilding the index.
            lock_wait_s: Seconds to wait for another process to close the collection.

        Raises:
            BackendUnavailable: another process has the collection open.
        """
        self.folder = folder
        self.closed = False
        self._settings = (index, hnsw_m, hnsw_ef_search)
        self._tombstone_ratio = tombstone_ratio
        self._autosave_changes = autosave_changes
        self._build_threads = build_threads or os.cpu_count() or 1
        self._write_lock = threading.Lock()
        self._rw = RWLock()
        self._pool_lock = threading.Lock()
        self._readers: list[sqlite3.Connection] = []
        self._unfiltered = Coalescer(self._search_unfiltered)
        self._unsaved = 0
        self._lock_fd = lock_folder(folder, lock_wait_s)
        try:
            self._writer = db.connect(folder / DB_FILE)
            meta = db.read_meta(self._writer)
            self.name = meta["name"]
            self.embedding_model = meta["embedding_model"]
            self.dimension = int(meta["dimension"])
            self.created = float(meta["created"])
            self._index_path = folder / f"index-{meta['uuid']}.faiss"
            self._index, self.repair_report = self._open_index()
            if self._index.tombstone_ratio > self._tombstone_ratio:
                self._compact()
        except BaseException:
            os.close(self._lock_fd)
            raise

    # -- index lifecycle ----------------------------------------------------------------

    def _new_index(self) -> FaissIndex:
        kind, m, ef = self._settings
        return FaissIndex(self.dimension, kind, m, ef)

    def _fill(self, index: FaissIndex, seqs: Ids) -> None:
        faiss.omp_set_num_threads(self._build_threads)
        for ids, vectors in db.iter_vectors(self._writer, seqs, self.dimension):
            index.add(ids, vectors)

    def _open_index(self) -> tuple[FaissIndex, RepairReport]:
        for stale in self.folder.glob("index-*.tmp"):
            stale.unlink()
        live = db.all_seqs(self._writer)
        kind, m, ef = self._settings
        index = FaissIndex.load(self._index_path, self.dimension, kind, m, ef)
        if index is None:
            index = self._new_index()
            self._fill(index, live)
            if not self._index_path.exists() and not len(live):
                return index, RepairReport()
            reason = (
                "index file missing"
                if not self._index_path.exists()
                else "index file unreadable or built with other settings"
            )
            report = RepairReport(reason=reason, rebuilt=True, added=len(live))
        else:
            report = self._resync(index, live)
        if report.repaired:
            logger.warning("faiss collection '%s': repaired its index: %s", self.name, report)
            self._index = index
            self._save()
        return index, report

    def _resync(self, index: FaissIndex, live: Ids) -> RepairReport:
        ids = index.ids()
        extra = np.setdiff1d(ids, live)
        missing = np.setdiff1d(live, ids)
        index.remove(extra)
        self._fill(index, missing)
        if index.kind == "flat":
            index.purge()
            return RepairReport(added=len(missing), removed=len(extra))
        return RepairReport(added=len(missing), tombstoned=len(extra))

    def _save(self) -> None:
        if self._index.kind == "flat" and self._index.tombstones:
            with self._rw.write():  # a saved flat index holds no tombstones
                self._index.purge()
        with self._rw.read():
            self._index.save(self._index_path)
        self._unsaved = 0

    def _compact(self) -> None:
        """Drop the tombstones: purge a flat index, rebuild an HNSW one from its live vectors."""
        started = time.perf_counter()
        old = self._index
        if old.kind == "flat":
            with self._rw.write():
                old.purge()
            return
        live = old.live_ids()
        fresh = self._new_index()
        faiss.omp_set_num_threads(self._build_threads)
        for start in range(0, len(live), 8192):
            batch = live[start : start + 8192]
            fresh.add(batch, old.vectors(batch))
        with self._rw.write():
            self._index = fresh
        self._save()
        logger.info(
            "faiss collection '%s': rebuilt HNSW index without %d tombstones in %.2fs",
            self.name,
            len(old.tombstones),
            time.perf_counter() - started,
        )

    # -- writes -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise BackendUnavailable(f"collection '{self.name}' is closed; open it again")

    def _commit(self, work: Callable[[sqlite3.Connection], _Change]) -> Any:
        with self._write_lock:
            self._check_open()
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                change = work(conn)
                with self._rw.write():
                    conn.execute("COMMIT")
                    self._index.remove(np.asarray(change.removed, dtype=np.int64))
                    if len(change.added):
                        faiss.omp_set_num_threads(self._build_threads)
                        self._index.add(change.added, change.vectors)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                else:  # committed, but the index update failed: bring it back in line
                    with self._rw.write():
                        self._resync(self._index, db.all_seqs(conn))
                raise
            self._unsaved += len(change.removed) + len(change.added)
            try:  # the write is committed: housekeeping failures are logged, not raised
                if self._index.tombstone_ratio > self._tombstone_ratio:
                    self._compact()
                elif self._unsaved >= self._autosave_changes:
                    self._save()
            except (OSError, RuntimeError, MemoryError):
                logger.exception("faiss collection '%s': saving the index failed", self.name)
            return change.result

    @staticmethod
    def _replace(
        conn: sqlite3.Connection, old: Sequence[int], chunks: Sequence[Chunk], vectors: Vector
    ) -> _Change:
        existing = db.existing_chunks(conn, [c.id for c in chunks])
        removed = sorted({*old, *(seq for seq, _ in existing)})
        db.delete_seqs(conn, removed)
        return _Change(removed, db.insert_chunks(conn, chunks, vectors), vectors)

    def upsert(self, chunks: Sequence[Chunk], vectors: Vector) -> None:
        """Insert or replace chunks by id (see ``VectorStore.upsert``); one transaction."""
        cleaned = clean_chunks(chunks)
        arr = check_vectors(vectors, len(cleaned), self.dimension, self.name)
        self._commit(lambda conn: self._replace(conn, (), cleaned, arr))

    def replace_document(
        self, record: DocumentRecord, chunks: Sequence[Chunk], vectors: Vector
    ) -> None:
        """Store ``record`` and its chunks, removing its previous ones; one transaction."""
        cleaned = clean_chunks(chunks, record.id)
        arr = check_vectors(vectors, len(cleaned), self.dimension, self.name)

        def work(conn: sqlite3.Connection) -> _Change:
            previous = db.get_document(conn, record.id)
            change = self._replace(conn, db.seqs_of_document(conn, record.id), cleaned, arr)
            db.upsert_document(conn, stamp_record(record, previous, len(cleaned)))
            return change

        self._commit(work)

    def delete(self, chunk_ids: Sequence[str]) -> None:
        """Delete chunks by id; missing ids are ignored."""

        def work(conn: sqlite3.Connection) -> _Change:
            seqs = [seq for seq, _ in db.existing_chunks(conn, list(chunk_ids))]
            db.delete_seqs(conn, seqs)
            return _Change(seqs)

        self._commit(work)
        with self._write_lock:
            self._check_open()
            db.checkpoint_truncate(self._writer)

    def delete_document(self, document_id: str) -> bool:
        """Delete a document's record and chunks (via the ``document_id`` index)."""

        def work(conn: sqlite3.Connection) -> _Change:
            seqs = db.seqs_of_document(conn, document_id)
            db.delete_seqs(conn, seqs)
            existed = db.delete_document_row(conn, document_id)
            return _Change(seqs, result=existed or bool(seqs))

        deleted = bool(self._commit(work))
        if deleted:  # no copy of the deleted text may stay in the WAL
            with self._write_lock:
                self._check_open()
                db.checkpoint_truncate(self._writer)
        return deleted

    # -- reads --------------------------------------------------------------------------

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        self._check_open()
        with self._pool_lock:
            conn = self._readers.pop() if self._readers else None
        if conn is None:
            conn = db.connect(self.folder / DB_FILE)
        try:
            yield conn
        finally:
            with self._pool_lock:
                if self.closed:
                    conn.close()
                else:
                    self._readers.append(conn)

    def search(
        self,
        vector: Vector,
        top_k: int = 10,
        filter: Filter | None = None,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """Cosine search with the filter applied inside FAISS; see ``VectorStore.search``."""
        check_top_k(top_k)
        query = prepare_query(vector, self.dimension, self.name)
        validate_filter(filter)
        faiss.omp_set_num_threads(1)
        with self._reader() as conn, self._rw.read():
            if not filter and self._index.kind == "flat":
                scores, ids = self._unfiltered((query, top_k))
            else:  # HNSW visits few vectors: its searches run side by side, not batched
                candidates = db.filter_seqs(conn, filter) if filter else None
                scores, ids = self._index.search(query, top_k, candidates)
            if score_threshold is not None:
                keep = scores >= score_threshold
                scores, ids = scores[keep], ids[keep]
            chunks = db.chunks_by_seqs(conn, ids.tolist())
        hits = [
            Hit(chunks[i], float(s))
            for s, i in zip(scores, ids.tolist(), strict=True)
            if i in chunks
        ]
        return sort_hits(hits, top_k, score_threshold)

    def _search_unfiltered(self, batch: Sequence[tuple[Vector, int]]) -> list[tuple[Any, Any]]:
        # Concurrent unfiltered searches share one index scan (``FaissIndex.search_many``).
        # Each caller already holds the read lock, so no write can run meanwhile.
        queries = np.vstack([query for query, _ in batch])
        return self._index.search_many(queries, [k for _, k in batch])

    def count(self) -> int:
        """Return the number of chunks stored."""
        with self._reader() as conn:
            return db.count_chunks(conn)

    def get_document(self, document_id: str) -> DocumentRecord | None:
        """Return a document's record, or None."""
        with self._reader() as conn:
            return db.get_document(conn, document_id)

    def list_documents(
        self, filter: Filter | None = None, limit: int | None = None, offset: int = 0
    ) -> list[DocumentRecord]:
        """Return records ordered by source, filtered on metadata, ``source``, ``document_id``."""
        if offset < 0 or (limit is not None and limit < 0):
            raise InvalidRequest("limit and offset must not be negative")
        with self._reader() as conn:
            return db.list_documents(conn, filter, limit, offset)

    def count_documents(self, filter: Filter | None = None) -> int:
        """Return the number of documents matching ``filter``."""
        with self._reader() as conn:
            return db.count_documents(conn, filter)

    def get_chunks(self, document_id: str) -> list[Chunk]:
        """Return a document's chunks ordered by position, then id."""
        with self._reader() as conn:
            return db.chunks_of_document(conn, document_id)

    def all_chunks(self) -> list[Chunk]:
        """Return every chunk, ordered by document id, position, id."""
        with self._reader() as conn:
            return db.every_chunk(conn)

    @property
    def tombstones(self) -> int:
        """Number of deleted ids still in the index, awaiting the next compaction."""
        return len(self._index.tombstones)

    def version(self) -> None:
        """Return None: no write counter is kept (one process writes the collection)."""
        return None

    def persist(self) -> None:
        """Write the index file now (SQLite is durable after every write already)."""
        with self._write_lock:
            self._check_open()
            if self._unsaved or not self._index_path.exists():
                self._save()

    def close(self) -> None:
        """Save the index if it changed, close connections and release the folder lock."""
        with self._write_lock:
            if self.closed:
                return
            if self._unsaved:
                self._save()
            with self._rw.write(), self._pool_lock:
                self.closed = True
                for conn in self._readers:
                    conn.close()
                self._readers.clear()
            self._writer.close()
            os.close(self._lock_fd)
