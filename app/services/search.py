"""The app's search service: ``retrieval.search.Searcher`` over the open collections.

The retrieval logic (modes, fusion, reranking, MMR, what ``Hit.score`` means) lives in
``retrieval/search.py``; this module binds it to the ``CollectionService``.
"""

from __future__ import annotations

from typing import Any

from retrieval.bm25 import KeywordTokenizer
from retrieval.keywords import KeywordIndexes
from retrieval.search import MODES, Mode, QueryEmbedder, Searcher, SearchOutcome

from .collections import CollectionService

__all__ = ["MODES", "Mode", "SearchOutcome", "SearchService"]


class SearchService(Searcher):
    """Search over a ``CollectionService``'s collections (see ``retrieval.search``)."""

    def __init__(
        self,
        collections: CollectionService,
        embedder: QueryEmbedder,
        default_mode: str,
        max_top_k: int,
        *,
        keywords: KeywordIndexes | None = None,
        **options: Any,
    ) -> None:
        """Bind a ``Searcher`` to ``collections``.

        Args:
            collections: The open collections.
            embedder: Embeds queries (and MMR candidates).
            default_mode: Mode used when a search names none.
            max_top_k: Largest ``top_k`` accepted.
            keywords: The BM25 indexes; in-memory ones are made if None.
            **options: The ``Searcher``'s keyword options (reranker, fusion weights, ...).
        """
        super().__init__(
            collections.get,
            embedder,
            default_mode,
            max_top_k,
            keywords=keywords or KeywordIndexes(collections.get, KeywordTokenizer(), None),
            **options,
        )
