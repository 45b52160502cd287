"""Documents: upload (now or as a background job), list, inspect, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.responses import JSONResponse

from app.deps import ServicesDep
from app.mapping import chunk_out, document_out, upload_response
from app.schemas import ChunkList, DocumentList, DocumentOut, JobOut, UploadResult, problems
from app.services.uploads import UploadOptions
from core.errors import InvalidRequest

router = APIRouter(tags=["documents"])
# SQLite integers are 64-bit: a larger offset was a 500 (found by schemathesis).
MAX_OFFSET = 1_000_000_000


def upload_names(files: list[UploadFile], source: list[str] | None) -> list[str | None]:
    """Each file's source: the ``source`` field given for it, else its multipart filename."""
    if not source:
        return [f.filename for f in files]
    if len(source) != len(files):
        raise InvalidRequest(
            f"{len(source)} 'source' fields for {len(files)} files; send one 'source' per file, "
            "in the order of the files, or none"
        )
    return list(source)


@router.post(
    "/collections/{name}/documents",
    status_code=201,
    response_model=UploadResult,
    responses={
        202: {"model": JobOut},
        207: {
            "model": UploadResult,
            "description": "Some files failed (their `status` is `failed`, with the reason) "
            "and the others were stored; the `X-Files-Failed` header counts the failures.",
        },
        **problems(404, 413, 415),
    },
)
def upload_documents(
    name: str,
    services: ServicesDep,
    files: Annotated[list[UploadFile], File(description="One or more files to ingest.")],
    metadata: Annotated[
        str | None, Form(description="JSON object applied to each file's metadata.")
    ] = None,
    source: Annotated[
        list[str] | None,
        Form(
            description="Each file's source, in file order (a relative path such as "
            "a/README.md); the multipart filename when omitted, which may itself be a relative "
            "path. '..', absolute paths and control characters are refused."
        ),
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
    names = upload_names(files, source)
    outcome = services.uploads.upload(
        name,
        list(zip(names, (f.file for f in files), strict=True)),
        UploadOptions(metadata, chunk_size, chunk_overlap),
        wait=wait,
    )
    return upload_response(name, outcome)


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
    records, total = services.documents.list(name, filter, limit, offset)
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
