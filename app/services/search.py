"""The app's search service: ``retrieval.search.Searcher`` over the open collections.

The retrieval logic (modes, fusion, reranking, MMR, what ``Hit.score`` means) lives in
``retrieval/search.py``; this module binds it to the ``CollectionService`` and speaks the
API's vocabulary (``app.services.vocabulary``): filters take the names hits show
(``filename`` as an alias of ``source``), and the outcome carries warnings where the hits may
surprise: a filter key no chunk of the collection has, or a ``score_threshold`` (a cosine of
dense candidates) used in a mode whose scores are not cosines.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from retrieval.bm25 import KeywordTokenizer
from retrieval.keywords import KeywordIndexes
from retrieval.search import MODES, Mode, QueryEmbedder, Searcher, SearchOutcome
from vectorstores.base import Filter

from .collections import CollectionService
from .vocabulary import normalize_filter, unknown_key_warnings

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

    def unknown_share(self, collection: str, question: str) -> float:
        """The share of the question's keywords that the collection's text never uses."""
        return self.keywords.unknown_share(collection, question)

    def search(
        self,
        collection: str,
        query: str,
        top_k: int,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        mode: str | None = None,
        **options: Any,
    ) -> SearchOutcome:
        """``Searcher.search`` with alias filter keys and the warnings (module docstring)."""
        filter = normalize_filter(filter)
        outcome = super().search(collection, query, top_k, filter, score_threshold, mode, **options)
        warnings = []
        if filter and not outcome.hits:
            warnings = unknown_key_warnings(self._stores(collection), filter)
        if score_threshold is not None and outcome.score_type != "cosine":
            warnings.append(threshold_note(score_threshold, outcome.mode))
        return dataclasses.replace(outcome, warnings=tuple(warnings))


def threshold_note(threshold: float, mode: str) -> str:
    """Say which score ``score_threshold`` compared when it is not the score shown."""
    if mode == "bm25":
        return (
            f"score_threshold {threshold} was ignored: it is a cosine similarity and bm25 "
            "mode has none"
        )
    return (
        f"score_threshold {threshold} compared the cosine similarity of the dense candidates "
        f"before {mode} ranking; the scores shown are not cosines (see score_type)"
    )
