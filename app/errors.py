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
from starlette.routing import compile_path

from app.schemas import PATTERN_WORDING
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


def _json_error_message(body: bytes, err: dict[str, Any]) -> str:
    """Say where a body fails to parse as JSON, as line and column, and what to look for."""
    loc = err.get("loc", ())
    pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else len(body)
    pos = max(0, min(pos, len(body)))
    line = body.count(b"\n", 0, pos) + 1
    column = pos - (body.rfind(b"\n", 0, pos) + 1) + 1
    reason = str((err.get("ctx") or {}).get("error") or "malformed JSON")
    before = body[:pos].rstrip()
    hint = (
        "remove the trailing comma before it (JSON allows none)"
        if before.endswith(b",")
        else "check the quotes, commas and brackets there"
    )
    return f"the request body is not valid JSON: {reason} at line {line}, column {column}; {hint}"


def _not_json_message(request: Request) -> str:
    """Say that a JSON route got another kind of body, and how to send it."""
    content_type = request.headers.get("content-type") or "no Content-Type"
    return (
        f"the request body must be a JSON object sent with Content-Type: application/json "
        f"(this one came as {content_type.split(';')[0]}); e.g. curl -H "
        "'content-type: application/json' -d '{...}'"
    )


def _field_message(first: dict[str, Any]) -> str:
    """``invalid request: <field>: <what to fix>`` for one validation error."""
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "request"
    msg = str(first["msg"])
    pattern = str((first.get("ctx") or {}).get("pattern", ""))
    if first.get("type") == "string_pattern_mismatch" and pattern in PATTERN_WORDING:
        msg = f"{first.get('input')!r} is not allowed: {PATTERN_WORDING[pattern]}"
    return f"invalid request: {where}: {msg}"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    errors = [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in raw
    ]
    first = raw[0] if raw else {"loc": (), "msg": "invalid request"}
    is_json = "json" in (request.headers.get("content-type") or "")
    if first.get("type") == "json_invalid":
        message = _json_error_message(await request.body(), first)
    elif tuple(first.get("loc", ())) == ("body",) and not is_json:
        message = _not_json_message(request)
    else:
        message = _field_message(first)
    return problem(422, "InvalidRequest", message, {"errors": errors})


HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def allowed_methods(request: Request) -> list[str]:
    """Every method the API takes at this path, from its OpenAPI paths.

    Starlette's 405 names only the methods of the first route that matched the path, so
    ``PUT /v1/collections`` would be told POST although GET works too.
    """
    methods: set[str] = set()
    paths: dict[str, dict[str, Any]] = request.app.openapi().get("paths", {})
    for template, operations in paths.items():
        if compile_path(template)[0].match(request.url.path):
            methods.update(m.upper() for m in operations if m in HTTP_METHODS)
    return sorted(methods) or ["no method"]


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    names = {404: "NotFound", 405: "MethodNotAllowed", 401: "Unauthorized", 403: "Forbidden"}
    headers = dict(exc.headers) if exc.headers else None
    message = str(exc.detail)
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        message = (
            f"{request.method} is not allowed on {request.url.path}; it takes "
            f"{' or '.join(allowed)}"
        )
    return problem(
        exc.status_code, names.get(exc.status_code, "HTTPError"), message, headers=headers
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
