"""OpenAI-compatible embeddings: the ``openai`` client, LangChain and LlamaIndex can embed here."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ServicesDep
from app.mapping import embedding_list
from app.schemas import EmbeddingList, EmbeddingRequest, problems
from app.services.embeddings import embed_inputs

router = APIRouter(tags=["openai"])


@router.post("/embeddings", response_model=EmbeddingList, responses=problems())
def create_embeddings(body: EmbeddingRequest, services: ServicesDep) -> EmbeddingList:
    """Embed texts with the server's embedding model (unit-length vectors)."""
    result = embed_inputs(services.embedder, body.input, body.model, body.dimensions, body.truncate)
    return embedding_list(result, body.encoding_format)
