"""What the LangChain and LlamaIndex retrievers share: their options and a hit's metadata."""

from __future__ import annotations

from typing import Any

from ._core import Mode, SearchOptions
from .models import Hit


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """The metadata a retriever gives a hit's document or node."""
    return {
        "chunk_id": hit.chunk_id,
        "document_id": hit.document_id,
        "source": hit.source,
        "page": hit.page,
        "heading_path": hit.heading_path,
        "score": hit.score,
    }


def search_options(top_k: int, filter: dict[str, Any] | None, mode: Mode | None) -> SearchOptions:
    """The search options of a retriever's settings."""
    options: SearchOptions = {"top_k": top_k}
    if filter:
        options["filter"] = filter
    if mode is not None:
        options["mode"] = mode
    return options
