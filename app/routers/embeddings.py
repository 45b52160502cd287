"""OpenAI-compatible embeddings: the ``openai`` client, LangChain and LlamaIndex can embed here."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ServicesDep
from app.schemas import EmbeddingItem, EmbeddingList, EmbeddingRequest, EmbeddingUsage, problems
from app.services.embeddings import embed_inputs

router = APIRouter(tags=["openai"])


@router.post("/embeddings", response_model=EmbeddingList, responses=problems())
def create_embeddings(body: EmbeddingRequest, services: ServicesDep) -> EmbeddingList:
    """Embed texts with the server's embedding model (unit-length vectors)."""
    result = embed_inputs(services.embedder, body.input, body.model, body.dimensions, body.truncate)
    vectors = result.encoded(body.encoding_format)
    return EmbeddingList(
        data=[EmbeddingItem(index=i, embedding=v) for i, v in enumerate(vectors)],
        model=result.model,
        usage=EmbeddingUsage(prompt_tokens=result.tokens, total_tokens=result.tokens),
    )
