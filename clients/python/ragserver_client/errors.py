"""Errors: the server's problem JSON (``{"error": {"type", "message", "detail"}}``) as exceptions.

Every error answer of ragserver becomes a ``RagServerError`` subclass chosen by its HTTP status,
carrying the server's ``type`` (its error class, e.g. ``CollectionNotFound``), ``message`` (what
to fix) and ``detail`` (structured context).
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "GatewayTimeoutError",
    "InvalidRequestError",
    "JobFailedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RagServerError",
    "RateLimitError",
    "ServerError",
    "ServiceUnavailableError",
    "UnsupportedMediaTypeError",
    "UpstreamError",
    "error_from_response",
]


class RagServerError(Exception):
    """An error answer of ragserver (or a failure to get one).

    Attributes:
        status: The HTTP status; 0 when no answer came (a job that failed, a broken stream).
        type: The server's error type, e.g. ``CollectionNotFound`` or ``InvalidRequest``.
        message: What went wrong and what to do about it.
        detail: Structured context the server gave.
    """

    def __init__(
        self, message: str, *, status: int = 0, type: str = "", detail: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type or self.__class__.__name__
        self.message = message
        self.detail: dict[str, Any] = detail if isinstance(detail, dict) else {}

    def __str__(self) -> str:
        prefix = f"{self.status} " if self.status else ""
        return f"{prefix}{self.type}: {self.message}"


class InvalidRequestError(RagServerError):
    """422: the request is malformed or over a limit; ``message`` says what to fix."""


class AuthenticationError(RagServerError):
    """401: no API key, or not a valid one."""


class PermissionDeniedError(RagServerError):
    """403: the key does not cover this collection, or is read-only."""


class NotFoundError(RagServerError):
    """404: the collection, document, job or route does not exist."""


class ConflictError(RagServerError):
    """409: the collection exists already, or is in use."""


class PayloadTooLargeError(RagServerError):
    """413: the upload or a file is over the server's limits."""


class UnsupportedMediaTypeError(RagServerError):
    """415: a file type the server cannot ingest."""


class RateLimitError(RagServerError):
    """429: over the rate limit (retried while retries last)."""


class ServerError(RagServerError):
    """500: an internal error; the server's log has more."""


class UpstreamError(RagServerError):
    """502: the server's model provider failed."""


class ServiceUnavailableError(RagServerError):
    """503: still loading its models, or overloaded (retried while retries last)."""


class GatewayTimeoutError(RagServerError):
    """504: no answer within the server's request timeout."""


class JobFailedError(RagServerError):
    """A background upload ended in state ``failed``; ``detail`` holds the job."""


_BY_STATUS: dict[int, type[RagServerError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: InvalidRequestError,
    429: RateLimitError,
    500: ServerError,
    502: UpstreamError,
    503: ServiceUnavailableError,
    504: GatewayTimeoutError,
}


def error_class(status: int) -> type[RagServerError]:
    """The exception class for an HTTP status (``RagServerError`` for an unlisted one)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    if status == 400:
        return InvalidRequestError
    return RagServerError


def error_from_body(status: int, body: Any, fallback: str = "") -> RagServerError:
    """Build the exception for a status and a decoded problem-JSON body."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or fallback or f"HTTP {status}")
        return error_class(status)(
            message, status=status, type=str(error.get("type") or ""), detail=error.get("detail")
        )
    return error_class(status)(fallback or f"HTTP {status}", status=status, type="HTTPError")


def error_from_response(response: httpx.Response) -> RagServerError:
    """Build the exception for an error answer (its body must have been read)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_from_body(response.status_code, body, response.text[:500])
