"""Documents: upload (now or as a background job), list, inspect, delete."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.responses import JSONResponse

from app.deps import ServicesDep
from app.errors import STATUS_BY_ERROR, problem
from app.metrics import Metrics
from app.routers.jobs import file_result_out, job_out
from app.schemas import (
    ChunkList,
    ChunkOut,
    DocumentList,
    DocumentOut,
    JobOut,
    UploadResult,
    problems,
)
from app.services.jobs import Job
from core import errors
from core.errors import InvalidRequest, LimitExceeded
from core.types import Chunk, DocumentRecord
from ingest.pipeline import FileResult

router = APIRouter(tags=["documents"])
# SQLite integers are 64-bit: a larger offset was a 500 (found by schemathesis).
MAX_OFFSET = 1_000_000_000


def document_out(record: DocumentRecord) -> DocumentOut:
    """Convert a document record to the API model."""
    return DocumentOut(
        id=record.id,
        filename=record.source,
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


def parse_json_object(raw: str | None, field: str) -> dict[str, Any] | None:
    """Parse a form or query field that must hold a JSON object."""
    if raw is None or raw.strip() == "":
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"'{field}' is not valid JSON ({exc.msg} at position {exc.pos}); "
            'send a JSON object such as {"team": "support"}'
        ) from exc
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{field}' must be a JSON object, got {type(value).__name__}")
    return value


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """Refuse metadata values that are not str, int, float or bool."""
    for key, value in (metadata or {}).items():
        if not isinstance(value, str | int | float | bool):
            raise InvalidRequest(
                f"metadata '{key}' is a {type(value).__name__}; values must be strings, "
                "numbers or booleans"
            )
    return metadata


def _failure_response(results: list[FileResult]) -> JSONResponse:
    """Answer with the first failure's status when every file of an upload failed."""
    first = results[0]
    cls = getattr(errors, first.error_type or "", errors.IngestError)
    status = next((STATUS_BY_ERROR[c] for c in cls.__mro__ if c in STATUS_BY_ERROR), 422)
    files = [file_result_out(r).model_dump() for r in results]
    return problem(status, first.error_type or "IngestError", first.error or "", {"files": files})


@router.post(
    "/collections/{name}/documents",
    status_code=201,
    response_model=UploadResult,
    responses={202: {"model": JobOut}, **problems(404, 413, 415)},
)
def upload_documents(
    name: str,
    services: ServicesDep,
    files: Annotated[list[UploadFile], File(description="One or more files to ingest.")],
    metadata: Annotated[
        str | None, Form(description="JSON object applied to each file's metadata.")
    ] = None,
    chunk_size: Annotated[
        int | None, Form(ge=16, le=100_000, description="Chunk size override, in tokens.")
    ] = None,
    chunk_overlap: Annotated[
        int | None, Form(ge=0, le=100_000, description="Chunk overlap override, in tokens.")
    ] = None,
    wait: Annotated[
        bool, Query(description="Process before answering (201) or as a job (202).")
    ] = True,
) -> UploadResult | JSONResponse:
    """Upload and ingest files."""
    services.collections.get(name)  # 404 before reading anything
    meta = check_metadata(parse_json_object(metadata, "metadata"))
    limit = services.settings.security.max_files_per_request
    if len(files) > limit:
        raise LimitExceeded(f"{len(files)} files in one upload; at most {limit} are accepted")
    staged = services.documents.stage((f.filename, f.file) for f in files)
    metrics = services.extras.get("metrics")

    def run(job: Job | None = None) -> list[FileResult]:
        def file_done(result: FileResult) -> None:
            if isinstance(metrics, Metrics):
                metrics.observe_ingest(result.status, result.chunk_count, result.error_type)
            if job is not None:
                job.results.append(result)
                job.files_done += 1

        def chunks_done(n: int) -> None:
            if job is not None:
                job.chunks_embedded += n

        return services.documents.ingest_staged(
            name, staged, meta, chunk_size, chunk_overlap, file_done, chunks_done
        )

    if not wait:
        job = services.jobs.submit(name, len(staged), run)
        return JSONResponse(job_out(job).model_dump(), status_code=202)
    results = run()
    if results and all(r.status == "failed" for r in results):
        return _failure_response(results)
    return UploadResult(collection=name, files=[file_result_out(r) for r in results])


@router.get("/collections/{name}/documents", response_model=DocumentList, responses=problems(404))
def list_documents(
    name: str,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Documents to skip.")] = 0,
    filter: Annotated[
        str | None, Query(description='Metadata filter as JSON, e.g. {"team": "support"}.')
    ] = None,
) -> DocumentList:
    """List documents, filtered by metadata, a page at a time."""
    records, total = services.documents.list(
        name, parse_json_object(filter, "filter"), limit, offset
    )
    return DocumentList(
        documents=[document_out(r) for r in records], total=total, limit=limit, offset=offset
    )


@router.get(
    "/collections/{name}/documents/{document_id}",
    response_model=DocumentOut,
    responses=problems(404),
)
def get_document(name: str, document_id: str, services: ServicesDep) -> DocumentOut:
    """Show a document's metadata, hash and chunk count."""
    return document_out(services.documents.get(name, document_id))


@router.get(
    "/collections/{name}/documents/{document_id}/chunks",
    response_model=ChunkList,
    responses=problems(404),
)
def get_chunks(name: str, document_id: str, services: ServicesDep) -> ChunkList:
    """List a document's chunks in order."""
    chunks = services.documents.chunks(name, document_id)
    return ChunkList(document_id=document_id, chunks=[chunk_out(c) for c in chunks])


@router.delete(
    "/collections/{name}/documents/{document_id}",
    status_code=204,
    response_class=Response,
    responses=problems(404),
)
def delete_document(name: str, document_id: str, services: ServicesDep) -> Response:
    """Delete a document and all its chunks."""
    services.documents.delete(name, document_id)
    return Response(status_code=204)
