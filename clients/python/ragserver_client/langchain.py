"""A LangChain retriever over a ragserver collection (``pip install ragserver-client[langchain]``).

from ragserver_client.langchain import RagServerRetriever

retriever = RagServerRetriever(base_url="http://127.0.0.1:8000", collection="docs", top_k=4)
docs = retriever.invoke("how do I push onto a heap?")
docs[0].metadata["source"], docs[0].metadata["score"]
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import PrivateAttr

from ._adapters import hit_metadata, search_options
from ._core import Mode
from .async_client import AsyncClient
from .client import Client
from .models import SearchResult

__all__ = ["RagServerRetriever"]


def to_documents(result: SearchResult) -> list[Document]:
    """One ``Document`` per hit, best first, with the hit's metadata (``hit_metadata``)."""
    return [
        Document(page_content=h.text, metadata=hit_metadata(h), id=h.chunk_id) for h in result.hits
    ]


class RagServerRetriever(BaseRetriever):
    """Retrieves a ragserver collection's chunks as LangChain ``Document``s (sync and async).

    Attributes:
        base_url: The server, e.g. ``http://127.0.0.1:8000``.
        collection: The collection to search.
        top_k: How many chunks to return.
        filter: A metadata filter (``{"team": "support"}``, ``{"page": {"$gte": 3}}``).
        mode: ``dense``, ``bm25`` or ``hybrid``; the server's default when None.
        api_key: Sent as a Bearer token when the server requires keys.
        timeout: Seconds per request.
    """

    base_url: str
    collection: str = "default"
    top_k: int = 5
    filter: dict[str, Any] | None = None
    mode: Mode | None = None
    api_key: str | None = None
    timeout: float = 60.0
    _client: Client | None = PrivateAttr(default=None)

    def _sync_client(self) -> Client:
        if self._client is None:
            self._client = Client(self.base_url, self.api_key, timeout=self.timeout)
        return self._client

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        options = search_options(self.top_k, self.filter, self.mode)
        return to_documents(self._sync_client().search(self.collection, query, **options))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        # A client per call: an httpx.AsyncClient's connections belong to one event loop.
        options = search_options(self.top_k, self.filter, self.mode)
        async with AsyncClient(self.base_url, self.api_key, timeout=self.timeout) as client:
            return to_documents(await client.search(self.collection, query, **options))
