"""Background ingestion jobs."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.deps import ServicesDep
from app.schemas import FileError, FileResultOut, JobOut, problems
from app.security import principal_of
from app.services.jobs import Job
from core.errors import NotFound
from ingest.pipeline import FileResult

router = APIRouter(tags=["jobs"])


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


@router.get("/jobs/{job_id}", response_model=JobOut, responses=problems(404))
def get_job(job_id: str, request: Request, services: ServicesDep) -> JobOut:
    """Report an ingestion job's state and progress."""
    job = services.jobs.get(job_id)
    if not principal_of(request).may_use(job.collection):
        raise NotFound(f"job '{job_id}' is unknown (jobs are kept in memory until restart)")
    return job_out(job)
