"""Semantic, keyword and hybrid search over a collection."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ServicesDep
from app.schemas import HitOut, SearchRequest, SearchResponse, problems
from core.types import Hit

router = APIRouter(tags=["search"])


def hit_out(hit: Hit) -> HitOut:
    """Convert a store hit to the API model."""
    return HitOut(
        chunk_id=hit.chunk.id,
        document_id=hit.chunk.document_id,
        filename=hit.chunk.source,
        page=hit.chunk.page,
        heading_path=hit.chunk.heading_path,
        text=hit.chunk.text,
        score=hit.score,
    )


@router.post("/collections/{name}/search", response_model=SearchResponse, responses=problems(404))
def search(name: str, body: SearchRequest, services: ServicesDep) -> SearchResponse:
    """Find the chunks most relevant to a query."""
    outcome = services.search.search(
        name,
        body.query,
        top_k=body.top_k,
        filter=body.filter,
        score_threshold=body.score_threshold,
        mode=body.mode,
        mmr=body.mmr,
        mmr_lambda=body.mmr_lambda,
        rerank=body.rerank,
    )
    return SearchResponse(
        query=body.query, mode=outcome.mode, hits=[hit_out(h) for h in outcome.hits]
    )
