"""Semantic, keyword and hybrid search over a collection."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ServicesDep
from app.mapping import hit_out
from app.schemas import SearchRequest, SearchResponse, problems

router = APIRouter(tags=["search"])


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
        query=body.query,
        mode=outcome.mode,
        score_type=outcome.score_type,
        hits=[hit_out(h) for h in outcome.hits],
        warnings=list(outcome.warnings),
    )
