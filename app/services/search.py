"""Search: embed the query, retrieve from a collection, return ranked hits."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidRequest
from ingest.base import Embedder
from vectorstores.base import Filter, Hit
from vectorstores.filters import validate_filter

from .collections import CollectionService


@dataclass(frozen=True)
class SearchOutcome:
    """Hits, best first, and the mode that produced them."""

    hits: list[Hit]
    mode: str


class SearchService:
    """Dense retrieval over a collection (the blocking calls run off the event loop)."""

    def __init__(
        self,
        collections: CollectionService,
        embedder: Embedder,
        default_mode: str,
        max_top_k: int,
    ) -> None:
        self._collections = collections
        self._embedder = embedder
        self._default_mode = default_mode
        self._max_top_k = max_top_k

    def search(
        self,
        collection: str,
        query: str,
        top_k: int,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        mode: str | None = None,
    ) -> SearchOutcome:
        """Return the ``top_k`` best hits for ``query``."""
        if top_k > self._max_top_k:
            raise InvalidRequest(
                f"top_k is {top_k}; at most {self._max_top_k} hits can be asked for"
            )
        if filter:
            validate_filter(filter)
        store = self._collections.get(collection)
        vector = self._embedder.embed_query(query)
        hits = store.search(vector, top_k=top_k, filter=filter, score_threshold=score_threshold)
        return SearchOutcome(hits=hits, mode="dense")
