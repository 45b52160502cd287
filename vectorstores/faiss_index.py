"""The FAISS side of the FAISS backend: an ``IndexIDMap2`` keyed by SQLite row ids.

Two kinds of index:

* ``flat``: ``IndexFlatIP``, exact.
* ``hnsw``: ``IndexHNSWFlat`` (inner product), approximate.

A delete only records a *tombstone*: the id stays in the index and every search excludes it
with an ``IDSelectorNot``. HNSW graphs cannot drop a node at all, and ``remove_ids`` on a flat
index moves the whole array (tens of milliseconds at 100k vectors), so tombstones keep a delete
in proportion to its own chunks. When tombstones exceed a fraction of the index (the owner
checks ``tombstone_ratio``), the owner compacts: ``purge`` for flat (one ``remove_ids``),
a rebuild from the live vectors for HNSW.

Filters are applied inside the search: the caller passes the candidate ids (the rows whose
metadata match, read from SQLite) and they go to FAISS as an ``IDSelectorBatch`` in the
search parameters. HNSW's filtered search can miss results when few ids match, so small
candidate sets are scored exactly, and a search that returns fewer hits than asked is retried
with a wider ``efSearch`` and finally exactly. Ties at the cut are widened so that the caller
can break them by chunk id.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import faiss as _faiss
import numpy as np
import numpy.typing as npt

from vectorstores.base import Vector

IndexKind = Literal["flat", "hnsw"]
Ids = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]
# faiss' bundled stubs lag its SWIG API (SearchParametersHNSW, sel=...); use it untyped.
faiss: Any = _faiss
_EMPTY_IDS: Ids = np.zeros(0, dtype=np.int64)
_EMPTY_SCORES: Scores = np.zeros(0, dtype=np.float32)
#: HNSW searches over at most this many candidates are exact (cheap and never miss).
EXACT_LIMIT = 4096
#: Batches of at least this many flat queries go through FAISS' matrix-product (BLAS) path.
BLAS_THRESHOLD = 2


class FaissIndex:
    """An ``IndexIDMap2`` over a flat or HNSW index, with tombstones for HNSW."""

    def __init__(
        self,
        dimension: int,
        kind: IndexKind = "flat",
        hnsw_m: int = 32,
        ef_search: int = 64,
        index: Any = None,
    ) -> None:
        """Create an empty index, or wrap a loaded one.

        Args:
            dimension: Vector dimension.
            kind: ``"flat"`` or ``"hnsw"``.
            hnsw_m: HNSW graph degree.
            ef_search: HNSW search breadth (raised to ``top_k`` when smaller).
            index: A deserialised ``IndexIDMap2`` to wrap instead of a new one.
        """
        self.dimension = dimension
        self.kind: IndexKind = kind
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        if index is None:
            if kind == "hnsw":
                inner: Any = faiss.IndexHNSWFlat(dimension, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            else:
                inner = faiss.IndexFlatIP(dimension)
            index = faiss.IndexIDMap2(inner)
        self.index: Any = index
        self.tombstones: set[int] = set()
        self._not_tombstone: tuple[Any, Any] | None = None

    # -- persistence --------------------------------------------------------------------

    @classmethod
    def load(
        cls, path: Path, dimension: int, kind: IndexKind, hnsw_m: int, ef_search: int
    ) -> FaissIndex | None:
        """Read an index file; None if it is missing, unreadable or of another kind or shape."""
        if not path.exists():
            return None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError:
            return None
        if not isinstance(index, faiss.IndexIDMap2) or index.d != dimension:
            return None
        inner = faiss.downcast_index(index.index)
        if kind == "hnsw":
            if not isinstance(inner, faiss.IndexHNSWFlat) or inner.hnsw.nb_neighbors(1) != hnsw_m:
                return None
        elif not isinstance(inner, faiss.IndexFlatIP):
            return None
        index.index = inner  # keep the concrete type for HNSW parameters
        return cls(dimension, kind, hnsw_m, ef_search, index=index)

    def save(self, path: Path) -> None:
        """Write the index to ``path`` atomically: temp file, fsync, ``os.replace``, dir fsync."""
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self.index, str(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # -- contents -----------------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        """Ids in the index, tombstones included."""
        return int(self.index.ntotal)

    @property
    def live_count(self) -> int:
        """Ids in the index that are not tombstones."""
        return self.ntotal - len(self.tombstones)

    @property
    def tombstone_ratio(self) -> float:
        """Fraction of the index that is tombstones."""
        return len(self.tombstones) / self.ntotal if self.ntotal else 0.0

    def ids(self) -> Ids:
        """Every id in the index, tombstones included, in insertion order."""
        return np.asarray(faiss.vector_to_array(self.index.id_map), dtype=np.int64)

    def live_ids(self) -> Ids:
        """Every id that is not a tombstone."""
        ids = self.ids()
        if self.tombstones:
            ids = ids[~np.isin(ids, self._tombstone_array())]
        return ids

    def _tombstone_array(self) -> Ids:
        return np.fromiter(self.tombstones, dtype=np.int64, count=len(self.tombstones))

    def add(self, ids: Ids, vectors: Vector) -> None:
        """Add unit vectors under new ids."""
        if len(ids):
            self.index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64)
            )

    def remove(self, ids: Ids) -> None:
        """Mark ids (all in the index) as tombstones: searches no longer return them."""
        if len(ids):
            self.tombstones.update(int(i) for i in np.asarray(ids, dtype=np.int64))
            self._not_tombstone = None

    def purge(self) -> None:
        """Flat only: drop the tombstones from the index for good (one ``remove_ids``)."""
        if self.kind != "flat":
            raise ValueError("an HNSW index cannot drop ids; rebuild it instead")
        if self.tombstones:
            self.index.remove_ids(faiss.IDSelectorBatch(self._tombstone_array()))
            self.tombstones.clear()
            self._not_tombstone = None

    def vectors(self, ids: Ids) -> Vector:
        """Return the stored vectors of ``ids`` (all must be in the index)."""
        if not len(ids):
            return np.zeros((0, self.dimension), dtype=np.float32)
        out: Vector = self.index.reconstruct_batch(np.asarray(ids, dtype=np.int64))
        return out

    # -- search -------------------------------------------------------------------------

    def search(self, query: Vector, k: int, candidates: Ids | None = None) -> tuple[Scores, Ids]:
        """Return the best ``k`` ids and scores, or more when ids tie with the ``k``-th.

        Args:
            query: One unit vector, shape ``(1, dimension)``.
            k: Number of hits wanted.
            candidates: Ids the hits must come from (a filter's matches), or None for all
                live ids. Candidates must not be tombstones.

        Returns:
            ``(scores, ids)``, best first; at least ``min(k, number of candidates)`` long.
        """
        n_candidates = len(candidates) if candidates is not None else self.live_count
        if n_candidates == 0 or k < 1:
            return _EMPTY_SCORES, _EMPTY_IDS
        k = min(k, n_candidates)
        if self.kind == "hnsw" and n_candidates <= EXACT_LIMIT:
            return self._exact(query, k, candidates if candidates is not None else self.live_ids())
        keep: list[Any] = []  # selectors must outlive the search
        selector = self._selector(candidates, keep)
        asked = min(k + 1, n_candidates)
        while True:
            scores, ids = self._search_once(query, asked, selector, n_candidates)
            if len(ids) < asked:  # HNSW missed some: fall back to exact scoring
                live = candidates if candidates is not None else self.live_ids()
                return self._exact(query, k, live)
            if asked < n_candidates and scores[-1] == scores[k - 1]:
                asked = min(asked * 2, n_candidates)  # the cut falls inside a tie: widen
                continue
            return scores, ids

    def search_many(self, queries: Vector, ks: Sequence[int]) -> list[tuple[Scores, Ids]]:
        """Unfiltered searches for several queries at once; each as ``search`` returns it.

        On a flat index the queries share one FAISS call: its blocked matrix product reads
        the stored vectors once for all of them, where one query at a time reads them once
        each (at 100k vectors of 384 floats, 150 MB a query). A query whose cut falls inside
        a tie is searched again alone, so that the tie is widened as ``search`` does. HNSW
        queries run one by one (each visits only a few vectors anyway).

        Args:
            queries: Unit vectors, shape ``(n, dimension)``.
            ks: Hits wanted per query.
        """
        if self.kind != "flat" or len(ks) == 1:
            return [self.search(queries[i : i + 1], k) for i, k in enumerate(ks)]
        n_live = self.live_count
        if n_live == 0:
            return [(_EMPTY_SCORES, _EMPTY_IDS) for _ in ks]
        keep: list[Any] = []
        selector = self._selector(None, keep)
        params = faiss.SearchParameters(sel=selector) if selector is not None else None
        asked = [min(k + 1, n_live) for k in ks]
        # Below this many queries FAISS scans once per query; the threshold is process-wide.
        faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
        all_scores, all_ids = self.index.search(
            np.ascontiguousarray(queries, dtype=np.float32), max(asked), params=params
        )
        out: list[tuple[Scores, Ids]] = []
        for row, (k, wanted) in enumerate(zip(ks, asked, strict=True)):
            scores, ids = _valid(all_scores[row][:wanted], all_ids[row][:wanted])
            k = min(k, n_live)
            if len(ids) < wanted or (wanted < n_live and scores[-1] == scores[k - 1]):
                out.append(self.search(queries[row : row + 1], k))  # a tie at the cut
            else:
                out.append((scores, ids))
        return out

    def _selector(self, candidates: Ids | None, keep: list[Any]) -> Any:
        if candidates is not None:
            batch = faiss.IDSelectorBatch(np.asarray(candidates, dtype=np.int64))
            keep.append(batch)
            return batch
        if not self.tombstones:
            return None
        if self._not_tombstone is None:
            batch = faiss.IDSelectorBatch(self._tombstone_array())
            self._not_tombstone = (batch, faiss.IDSelectorNot(batch))
        keep.append(self._not_tombstone)
        return self._not_tombstone[1]

    def _search_once(
        self, query: Vector, k: int, selector: Any, n_candidates: int
    ) -> tuple[Scores, Ids]:
        if self.kind == "flat":
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
            scores, ids = self.index.search(query, k, params=params)
            return _valid(scores[0], ids[0])
        ef = max(self.ef_search, k)
        while True:
            params = faiss.SearchParametersHNSW(efSearch=ef)
            if selector is not None:
                params.sel = selector
            scores, ids = self.index.search(query, k, params=params)
            scores, ids = _valid(scores[0], ids[0])
            if len(ids) >= k or ef >= n_candidates:
                return scores, ids
            ef *= 4

    def _exact(self, query: Vector, k: int, candidates: Ids) -> tuple[Scores, Ids]:
        ids = np.asarray(candidates, dtype=np.int64)
        scores = (self.vectors(ids) @ query[0]).astype(np.float32)
        if len(ids) > k:
            kth = np.partition(scores, len(ids) - k)[len(ids) - k]
            keep = scores >= kth  # every id tied with the k-th stays
            scores, ids = scores[keep], ids[keep]
        order = np.lexsort((ids, -scores))
        return scores[order], ids[order]


def _valid(scores: Scores, ids: Ids) -> tuple[Scores, Ids]:
    mask = ids >= 0
    return scores[mask], ids[mask]
