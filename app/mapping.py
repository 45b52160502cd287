"""Conversions between the API models (``app/schemas.py``) and the services' types.

Routers call one service method and hand its result to a function here; no router imports
another router, and no conversion is written twice.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, cast

from fastapi.responses import JSONResponse

from app.conversation_schemas import ConversationOut, RewriteMethod, TurnCitation, TurnOut
from app.errors import problem, status_for
from app.schemas import (
    ChatMessage,
    ChunkOut,
    CitationOut,
    CollectionOut,
    DocumentOut,
    EmbeddingItem,
    EmbeddingList,
    EmbeddingUsage,
    EvidenceOut,
    FileError,
    FileResultOut,
    HitOut,
    JobOut,
    PreviewResponse,
    QueryRequest,
    QueryResponse,
    UploadResult,
)
from app.services.answers import AnswerRequest, AnswerResult, LLMOptions, Prepared, citations_for
from app.services.conversation_store import Conversation
from app.services.conversations import ConversationAnswer
from app.services.embeddings import Embeddings
from app.services.jobs import Job
from core.errors import IngestError, RagError
from core.types import Chunk, DocumentRecord, Hit
from ingest.results import FileResult
from vectorstores.base import CollectionInfo


def collection_out(info: CollectionInfo) -> CollectionOut:
    """Convert the store's collection info to the API model."""
    return CollectionOut(
        name=info.name,
        embedding_model=info.embedding_model,
        dimension=info.dimension,
        documents=info.document_count,
        chunks=info.chunk_count,
    )


def document_out(record: DocumentRecord) -> DocumentOut:
    """Convert a document record to the API model."""
    return DocumentOut(
        id=record.id,
        source=record.source,
        content_hash=record.content_hash,
        chunks=record.chunk_count,
        metadata=record.metadata,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def chunk_out(chunk: Chunk) -> ChunkOut:
    """Convert a stored chunk to the API model."""
    return ChunkOut(
        id=chunk.id,
        document_id=chunk.document_id,
        position=chunk.position,
        page=chunk.page,
        heading_path=chunk.heading_path,
        text=chunk.text,
        metadata=chunk.metadata,
    )


def hit_out(hit: Hit) -> HitOut:
    """Convert a search hit to the API model."""
    return HitOut(
        chunk_id=hit.chunk.id,
        document_id=hit.chunk.document_id,
        source=hit.chunk.source,
        page=hit.chunk.page,
        heading_path=hit.chunk.heading_path,
        text=hit.chunk.text,
        score=hit.score,
    )


def file_result_out(result: FileResult) -> FileResultOut:
    """Convert a pipeline result to the API model."""
    failed = result.status == "failed"
    return FileResultOut(
        document_id=None if failed else result.document_id,
        filename=result.source,
        status=result.status,
        chunks=result.chunk_count,
        error=FileError(type=result.error_type or "IngestError", message=result.error or "")
        if failed
        else None,
        warnings=list(result.warnings),
    )


def job_out(job: Job) -> JobOut:
    """Convert a job to the API model."""
    files = [file_result_out(r) for r in list(job.results)]
    return JobOut(
        id=job.id,
        collection=job.collection,
        state=job.state,
        files_total=job.files_total,
        files_done=job.files_done,
        chunks_embedded=job.chunks_embedded,
        files=files,
        created_at=job.created_at,
        finished_at=job.finished_at,
        error=job.error,
    )


def upload_response(
    collection: str, outcome: list[FileResult] | Job
) -> UploadResult | JSONResponse:
    """Answer an upload: 202 and the job, or 201 and each file's result.

    When some files failed and others went in, the answer is 207 with each file's result and
    ``X-Files-Failed`` counting the failures. When every file failed, the answer is the first
    failure's error (its status from ``app/errors.py``'s table) with every file's result in
    its detail.
    """
    if isinstance(outcome, Job):
        return JSONResponse(job_out(outcome).model_dump(), status_code=202)
    if outcome and all(r.status == "failed" for r in outcome):
        first = outcome[0]
        exc = first.exception
        status = status_for(exc if isinstance(exc, RagError) else IngestError(first.error or ""))
        files = [file_result_out(r).model_dump() for r in outcome]
        return problem(
            status, first.error_type or "IngestError", first.error or "", {"files": files}
        )
    body = UploadResult(collection=collection, files=[file_result_out(r) for r in outcome])
    failed = sum(r.status == "failed" for r in outcome)
    if failed:
        headers = {"X-Files-Failed": str(failed)}
        return JSONResponse(body.model_dump(), status_code=207, headers=headers)
    return body


def answer_request(body: QueryRequest) -> AnswerRequest:
    """Convert the API request to the service's."""
    llm = body.llm
    return AnswerRequest(
        question=body.question,
        strategy=body.strategy,
        role=body.role,
        examples=[e.model_dump() for e in body.examples] if body.examples is not None else None,
        history=[m.model_dump() for m in body.history],
        top_k=body.top_k,
        filter=body.filter,
        mode=body.mode,
        params=body.params,
        llm=LLMOptions(llm.model, llm.temperature, llm.max_tokens) if llm else LLMOptions(),
        answer_mode=body.answer_mode,
    )


def query_response(answer: ConversationAnswer) -> QueryResponse:
    """Convert the service's answer (and its conversation facts) to the API model."""
    result = answer.result
    return QueryResponse(
        answer=result.answer,
        reasoning=result.reasoning,
        citations=[CitationOut(**asdict(c)) for c in result.citations],
        usage=result.usage,
        timings=result.timings,
        model=result.model,
        conversation_id=answer.conversation_id,
        turn=answer.turn,
        **followup_facts(answer),
        **answer_facts(result),
    )


def followup_facts(answer: ConversationAnswer) -> dict[str, Any]:
    """The rewritten query of an answer and how it was made, as response fields."""
    rewrite = answer.rewrite
    if rewrite is None:
        return {"rewritten_query": None, "rewrite": None}
    return {"rewritten_query": rewrite.query, "rewrite": rewrite.method}


def conversation_out(conversation: Conversation) -> ConversationOut:
    """Convert a stored conversation to the API model."""
    return ConversationOut(
        id=conversation.id,
        collection=conversation.collection,
        created_at=conversation.created_at,
        turns=[
            TurnOut(
                position=t.position,
                question=t.question,
                rewritten_query=t.rewritten_query,
                rewrite=cast(RewriteMethod, t.rewrite),
                answer=t.answer,
                citations=[TurnCitation(**c) for c in t.citations],
                created_at=t.created_at,
            )
            for t in conversation.turns
        ],
    )


def answer_facts(result: AnswerResult) -> dict[str, Any]:
    """The evidence, mode and abstention of an answer, as response fields."""
    return {
        "evidence": [
            EvidenceOut(citation=e.citation, start=e.start, end=e.end, text=e.text, score=e.score)
            for e in result.evidence
        ],
        "answer_mode": result.answer_mode,
        "abstained": result.abstained,
        "confidence": result.confidence,
    }


def preview_response(prepared: Prepared) -> PreviewResponse:
    """Convert a prepared (not generated) answer to the prompt preview."""
    packed = prepared.packed
    return PreviewResponse(
        messages=[ChatMessage(role=m["role"], content=m["content"]) for m in packed.messages],
        usage=packed.report.to_dict(),
        citations=[CitationOut(**asdict(c)) for c in citations_for(prepared, "")],
        template=packed.template,
    )


def embedding_list(result: Embeddings, encoding_format: str) -> EmbeddingList:
    """Convert embedded inputs to the OpenAI-compatible list, as floats or base64."""
    vectors = result.encoded(encoding_format)
    return EmbeddingList(
        data=[EmbeddingItem(index=i, embedding=v) for i, v in enumerate(vectors)],
        model=result.model,
        usage=EmbeddingUsage(prompt_tokens=result.tokens, total_tokens=result.tokens),
    )
