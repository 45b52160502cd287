"""Search: dense, keyword (BM25) or hybrid retrieval, with optional reranking and MMR.

What ``Hit.score`` means depends on what produced the final order (``Hit.kind`` says which):

* ``dense``: the cosine similarity of chunk and query (-1 to 1, higher is better).
* ``bm25``: the BM25 score (0 to unbounded; only chunks sharing a word with the query).
* ``hybrid``: the weighted reciprocal-rank-fusion score, ``sum(weight / (rrf_k + rank))``
  over the dense and the BM25 ranking (at most ``(dense_weight + keyword_weight) /
  (rrf_k + 1)``, about 0.028 with the defaults).
* reranked: the cross-encoder's score, whatever the mode.
* MMR reorders and thins out the hits but leaves each hit's score as above, so scores need
  not descend after MMR.

``score_threshold`` is a cosine similarity and applies to dense candidates only: in ``dense``
mode hits below it are left out; in ``hybrid`` mode dense candidates below it are left out
before fusion, while BM25 candidates (which have no cosine) stay; ``bm25`` mode ignores it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

import numpy as np

from core.errors import ConfigurationError, InvalidRequest
from core.tracing import span
from core.types import Hit
from retrieval.fusion import rrf_fuse
from retrieval.keywords import KeywordIndexes, StoreLookup
from retrieval.mmr import mmr_select
from retrieval.rerankers import Reranker, rerank_hits
from vectorstores.base import Filter, Vector
from vectorstores.filters import validate_filter

Mode = Literal["dense", "bm25", "hybrid"]
MODES: tuple[str, ...] = get_args(Mode)


class QueryEmbedder(Protocol):
    """What search needs of an embedder (``ingest.base.Embedder`` has it)."""

    def embed_query(self, text: str) -> Vector:
        """Embed one query as a unit-length vector."""

    def embed(self, texts: Sequence[str]) -> Vector:
        """Embed passages (MMR's candidates) as unit-length rows."""


@dataclass(frozen=True)
class SearchOutcome:
    """Hits, best first, and how they were produced.

    Attributes:
        hits: The hits (see the module docstring for what ``score`` means).
        mode: ``dense``, ``bm25`` or ``hybrid``.
        reranked: The cross-encoder ordered the hits.
        mmr: The hits were diversified by maximal marginal relevance.
        warnings: Why the hits may not be what the caller expects (the app fills them: a
            filter key no chunk has, a threshold that compared another score than the one
            shown).
    """

    hits: list[Hit]
    mode: str
    reranked: bool = False
    mmr: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def score_type(self) -> str:
        """What each hit's ``score`` is: cosine, bm25, rrf or cross-encoder."""
        if self.reranked:
            return "cross-encoder"
        return {"dense": "cosine", "bm25": "bm25", "hybrid": "rrf"}[self.mode]


@dataclass(frozen=True)
class _Plan:
    """A checked search request: the mode and how many candidates each stage takes."""

    mode: str
    top_k: int
    pool: int
    fetch: int
    rerank: bool
    mmr: bool
    mmr_lambda: float


class Searcher:
    """Retrieval over collections (blocking; the web layer runs it off the event loop)."""

    def __init__(
        self,
        stores: StoreLookup,
        embedder: QueryEmbedder,
        default_mode: str,
        max_top_k: int,
        *,
        keywords: KeywordIndexes,
        reranker: Reranker | None = None,
        rrf_k: int = 60,
        dense_weight: float = 1.0,
        keyword_weight: float = 1.0,
        candidates: int = 50,
        rerank_candidates: int = 20,
        mmr_candidates: int = 20,
    ) -> None:
        """Configure retrieval.

        Args:
            stores: Opens a collection's store by name.
            embedder: Embeds queries (and MMR candidates).
            default_mode: Mode used when a search names none.
            max_top_k: Largest ``top_k`` accepted.
            keywords: The BM25 indexes.
            reranker: The cross-encoder, or None (reranking unavailable).
            rrf_k: Reciprocal-rank-fusion constant.
            dense_weight: Weight of the dense ranking in hybrid fusion.
            keyword_weight: Weight of the BM25 ranking in hybrid fusion.
            candidates: Hits each retriever contributes to hybrid fusion (at least ``top_k``).
            rerank_candidates: Candidates the reranker scores (at least ``top_k``).
            mmr_candidates: Candidates MMR picks from (at least ``top_k``).
        """
        if default_mode not in MODES:
            raise InvalidRequest(f"unknown search mode {default_mode!r}; use one of {MODES}")
        self._stores = stores
        self._embedder = embedder
        self._default_mode = default_mode
        self._max_top_k = max_top_k
        self.keywords = keywords
        self.reranker = reranker
        self._rrf_k = rrf_k
        if dense_weight < 0 or keyword_weight < 0 or dense_weight + keyword_weight == 0:
            raise ConfigurationError(
                f"hybrid weights must be non-negative and not both 0 (dense {dense_weight}, "
                f"keyword {keyword_weight})"
            )
        self._weights = (dense_weight, keyword_weight)
        self._candidates = candidates
        self._rerank_candidates = rerank_candidates
        self._mmr_candidates = mmr_candidates

    @property
    def default_mode(self) -> str:
        """The mode used when a search names none."""
        return self._default_mode

    def search(
        self,
        collection: str,
        query: str,
        top_k: int,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        mode: str | None = None,
        *,
        mmr: bool = False,
        mmr_lambda: float = 0.7,
        rerank: bool | None = None,
    ) -> SearchOutcome:
        """Return the ``top_k`` best hits for ``query``.

        Args:
            collection: Collection name.
            query: The query text.
            top_k: Hits wanted (1 to ``max_top_k``).
            filter: Metadata filter, applied to dense and BM25 candidates alike.
            score_threshold: Least cosine similarity of dense candidates (module docstring).
            mode: ``dense``, ``bm25`` or ``hybrid``; the configured default when None.
            mmr: Diversify the hits by maximal marginal relevance.
            mmr_lambda: MMR trade-off in [0, 1]; 1 is pure relevance.
            rerank: Rerank with the cross-encoder; None does so when one is configured.

        Raises:
            InvalidRequest: bad ``top_k``, mode, ``mmr_lambda`` or filter, or ``rerank``
                asked for while no reranker is configured.
            CollectionNotFound: no such collection.
        """
        plan = self._plan(top_k, mode, mmr, mmr_lambda, rerank)
        if filter:
            validate_filter(filter)
        hits = self._candidates_for(plan, collection, query, filter, score_threshold)
        hits = self._refine(plan, query, hits)
        return SearchOutcome(hits=hits[:top_k], mode=plan.mode, reranked=plan.rerank, mmr=mmr)

    def _plan(
        self, top_k: int, mode: str | None, mmr: bool, mmr_lambda: float, rerank: bool | None
    ) -> _Plan:
        """Check a request's options and size each stage's candidate list."""
        mode = mode or self._default_mode
        if mode not in MODES:
            raise InvalidRequest(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        if not 1 <= top_k <= self._max_top_k:
            raise InvalidRequest(
                f"top_k is {top_k}; ask for 1 to {self._max_top_k} hits",
                {"max_top_k": self._max_top_k},
            )
        if not 0.0 <= mmr_lambda <= 1.0:
            raise InvalidRequest(f"mmr_lambda is {mmr_lambda}; it must be between 0 and 1")
        if rerank and self.reranker is None:
            raise InvalidRequest(
                "rerank was asked for but no reranker is configured; set "
                "RAG_RETRIEVAL__RERANKER to a local cross-encoder folder"
            )
        use_rerank = self.reranker is not None and rerank is not False
        pool = top_k
        if use_rerank:
            pool = max(pool, self._rerank_candidates)
        if mmr:
            pool = max(pool, self._mmr_candidates)
        fetch = max(pool, self._candidates) if mode == "hybrid" else pool
        return _Plan(mode, top_k, pool, fetch, use_rerank, mmr, mmr_lambda)

    def _candidates_for(
        self,
        plan: _Plan,
        collection: str,
        query: str,
        filter: Filter | None,
        score_threshold: float | None,
    ) -> list[Hit]:
        """The dense and/or keyword candidates, fused in hybrid mode, cut to the pool."""
        store = self._stores(collection)
        dense: list[Hit] = []
        keyword: list[Hit] = []
        if plan.mode in ("dense", "hybrid"):
            with span("embedding", texts=1):
                vector = self._embedder.embed_query(query)
            with span("store.search", collection=collection, top_k=plan.fetch) as current:
                dense = store.search(
                    vector, top_k=plan.fetch, filter=filter, score_threshold=score_threshold
                )
                current.set_attribute("hits", len(dense))
        if plan.mode in ("bm25", "hybrid"):
            with span("bm25.search", collection=collection, top_k=plan.fetch) as current:
                keyword = self.keywords.search(collection, query, plan.fetch, filter)
                current.set_attribute("hits", len(keyword))
        if plan.mode == "hybrid":
            return rrf_fuse([dense, keyword], k=self._rrf_k, weights=self._weights)[: plan.pool]
        return (dense if plan.mode == "dense" else keyword)[: plan.pool]

    def _refine(self, plan: _Plan, query: str, hits: list[Hit]) -> list[Hit]:
        """Rerank and/or diversify the candidates as the plan says."""
        if plan.rerank and hits:
            assert self.reranker is not None
            with span("rerank", candidates=len(hits)):
                texts = [h.chunk.embedding_text for h in hits]
                hits = rerank_hits(self.reranker, query, hits, texts)
        if plan.mmr and len(hits) > 1:
            with span("embedding", texts=len(hits)):
                vectors = self._embedder.embed([h.chunk.embedding_text for h in hits])
            relevance = np.array([h.score for h in hits], dtype=np.float64)
            picked = mmr_select(relevance, vectors, plan.top_k, plan.mmr_lambda)
            hits = [hits[i] for i in picked]
        return hits

    def changed(self, collection: str) -> None:
        """Report a write to ``collection`` (ingest, replace, delete) to the keyword index."""
        self.keywords.changed(collection)

    def close(self) -> None:
        """Stop background index work."""
        self.keywords.close()
