"""Background ingestion jobs."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.deps import ServicesDep
from app.mapping import job_out
from app.schemas import JobOut, problems
from app.security import principal_of
from core.errors import NotFound

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}", response_model=JobOut, responses=problems(404))
def get_job(job_id: str, request: Request, services: ServicesDep) -> JobOut:
    """Report an ingestion job's state and progress."""
    job = services.jobs.get(job_id)
    if not principal_of(request).may_use(job.collection):
        raise NotFound(
            f"job '{job_id}' is unknown (only the latest RAG_JOBS__KEEP_FINISHED finished "
            "jobs are kept)"
        )
    return job_out(job)
