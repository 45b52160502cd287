"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(request: Request) -> Health | JSONResponse:
    """Models and store are loaded (503 until then)."""
    loader = request.app.state.loader
    if loader.services is not None:
        detail = loader.services.embedder.backend_info
        return Health(status="ok", detail={"embedding": detail} if detail else {})
    status = "failed" if loader.error else "loading"
    body = Health(status=status, detail={"error": loader.error} if loader.error else {})
    return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "2"})
