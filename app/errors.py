"""Maps the domain error hierarchy to HTTP statuses and one problem-JSON body.

Every error answer looks like ``{"error": {"type": ..., "message": ..., "detail": ...}}``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core import errors as e

log = logging.getLogger(__name__)

# The first class found walking an exception's MRO decides the status.
STATUS_BY_ERROR: dict[type[Exception], int] = {
    e.UnsupportedFileType: 415,
    e.FileTooLarge: 413,
    e.PayloadTooLarge: 413,
    e.IngestError: 422,
    e.InvalidRequest: 422,
    e.LimitExceeded: 422,
    e.NotFound: 404,
    e.Conflict: 409,
    e.Unauthorized: 401,
    e.Forbidden: 403,
    e.RateLimited: 429,
    e.Overloaded: 503,
    e.BackendUnavailable: 503,
    e.ProviderTimeout: 504,
    e.ProviderError: 502,
    e.ConfigurationError: 500,
    e.RagError: 500,
}


def status_for(exc: BaseException) -> int:
    """Return the HTTP status for a domain error, walking its MRO."""
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def problem(
    status: int,
    type_: str,
    message: str,
    detail: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build the one error body every route answers with."""
    body = {"error": {"type": type_, "message": message, "detail": detail or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def retry_headers(exc: BaseException) -> dict[str, str] | None:
    """Return a Retry-After header for errors that carry one."""
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is None:
        return None
    return {"Retry-After": str(max(1, round(float(retry_after))))}


async def _rag_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.RagError)
    status = status_for(exc)
    if status >= 500 and status not in (502, 503, 504):
        log.error("internal error: %s", exc.message, exc_info=exc)
    return problem(status, type(exc).__name__, exc.message, exc.detail, retry_headers(exc))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "request"
    message = f"invalid request: {where}: {first['msg']}"
    return problem(422, "InvalidRequest", message, {"errors": errors})


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    names = {404: "NotFound", 405: "MethodNotAllowed", 401: "Unauthorized", 403: "Forbidden"}
    return problem(
        exc.status_code,
        names.get(exc.status_code, "HTTPError"),
        str(exc.detail),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "InternalError", "internal server error; see the server log")


def register_error_handlers(app: FastAPI) -> None:
    """Install the handlers that turn every error into the problem-JSON shape."""
    app.add_exception_handler(e.RagError, _rag_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
