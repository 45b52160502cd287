"""A LlamaIndex retriever over a ragserver collection (extra: ``llama-index``).

from llama_index.core.query_engine import RetrieverQueryEngine
from ragserver_client.llama_index import RagServerRetriever

retriever = RagServerRetriever(base_url="http://127.0.0.1:8000", collection="docs")
engine = RetrieverQueryEngine.from_args(retriever, llm=my_llm)
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from ._adapters import hit_metadata, search_options
from ._core import Mode
from .async_client import AsyncClient
from .client import Client
from .models import SearchResult

__all__ = ["RagServerRetriever"]


def to_nodes(result: SearchResult) -> list[NodeWithScore]:
    """One ``NodeWithScore`` per hit, best first; the node's id is the chunk id."""
    return [
        NodeWithScore(
            node=TextNode(id_=h.chunk_id, text=h.text, metadata=hit_metadata(h)), score=h.score
        )
        for h in result.hits
    ]


class RagServerRetriever(BaseRetriever):
    """Retrieves a ragserver collection's chunks as LlamaIndex ``NodeWithScore``s.

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8000``.
        collection: The collection to search.
        top_k: How many chunks to return.
        filter: A metadata filter (``{"team": "support"}``, ``{"page": {"$gte": 3}}``).
        mode: ``dense``, ``bm25`` or ``hybrid``; the server's default when None.
        api_key: Sent as a Bearer token when the server requires keys.
        timeout: Seconds per request.
        callback_manager: LlamaIndex's callback manager.
    """

    def __init__(
        self,
        base_url: str,
        collection: str = "default",
        top_k: int = 5,
        filter: dict[str, Any] | None = None,
        mode: Mode | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        self.base_url = base_url
        self.collection = collection
        self.top_k = top_k
        self.filter = filter
        self.mode = mode
        self.api_key = api_key
        self.timeout = timeout
        self._client: Client | None = None

    def _options(self) -> Any:
        return search_options(self.top_k, self.filter, self.mode)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if self._client is None:
            self._client = Client(self.base_url, self.api_key, timeout=self.timeout)
        result = self._client.search(self.collection, query_bundle.query_str, **self._options())
        return to_nodes(result)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # A client per call: an httpx.AsyncClient's connections belong to one event loop.
        async with AsyncClient(self.base_url, self.api_key, timeout=self.timeout) as client:
            query = query_bundle.query_str
            return to_nodes(await client.search(self.collection, query, **self._options()))
