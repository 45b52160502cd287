"""ASGI middleware around every request; ``install_middleware`` puts it in order.

Request ids, access logs and metrics; keys, scopes, rate and size limits; the time-to-first-byte
timeout. From the outside in: CORS (only when origins are configured) answers preflights itself;
``RequestContextMiddleware`` names the request, logs it and counts it; ``AccessMiddleware``
refuses what the caller may not do before any body is read; ``TimeoutMiddleware`` answers 504
when no response has started in time (a stream that has started runs on: SSE is not cut).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import problem
from app.logs import REQUEST_ID_HEADER, request_id_from, request_id_var
from app.metrics import UNMATCHED_ROUTE, Metrics
from app.security import (
    ANONYMOUS,
    PRINCIPAL_SCOPE_KEY,
    READ_ONLY_POSTS,
    SAFE_METHODS,
    KeyRing,
    Principal,
    RateLimiter,
    access_error,
    bearer_token,
)
from app.settings import Settings

log = logging.getLogger(__name__)
access_log = logging.getLogger("ragserver.access")
ROUTE_SCOPE_KEY = "ragserver.route"
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MB = 1_000_000


@dataclass(frozen=True)
class RouteMatch:
    """The route a request goes to: its path template and path parameters."""

    template: str
    params: dict[str, Any] = field(default_factory=dict)


def _flat_routes(routes: list[Any]) -> list[Any]:
    """The app's routes with included routers flattened (FastAPI includes them lazily)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazy inclusion: the routes are flat already
        return routes
    return list(iter_route_contexts(routes))


def resolve_route(scope: Scope) -> RouteMatch | None:
    """Find the route that fully matches the request (path and method), without calling it."""
    cached = scope.get(ROUTE_SCOPE_KEY)
    if isinstance(cached, RouteMatch):
        return cached
    router = getattr(scope.get("app"), "router", None)
    for route in _flat_routes(getattr(router, "routes", [])):
        match, child = route.matches(scope)
        if match is Match.FULL:
            template = getattr(route, "path_format", None) or getattr(route, "path", "")
            found = RouteMatch(str(template), dict(child.get("path_params", {})))
            scope[ROUTE_SCOPE_KEY] = found
            return found
    return None


async def send_problem(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    type_: str,
    message: str,
    detail: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer with the problem-JSON body every error has."""
    await problem(status, type_, message, detail, headers)(scope, receive, send)


class RequestContextMiddleware:
    """Gives each request an id (``X-Request-ID``), logs it as JSON and counts it in metrics.

    An exception that escapes the app is logged once, with the request id, and answered with
    the 500 problem body (when no response has started).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope).get(REQUEST_ID_HEADER))
        token = request_id_var.set(request_id)
        match = resolve_route(scope)
        route = match.template if match else UNMATCHED_ROUTE
        started = time.perf_counter()
        ended: float | None = None
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started, ended
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                ended = time.perf_counter()
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception(
                "unhandled error in %s %s",
                scope["method"],
                scope["path"],
                extra={"request_id": request_id},
            )
            if response_started:
                raise
            await send_problem(
                scope,
                receive,
                send_with_id,
                500,
                "InternalError",
                "internal server error; see the server log",
                {"request_id": request_id},
            )
        finally:
            self.metrics.in_flight.dec()
            seconds = (ended or time.perf_counter()) - started
            self.metrics.observe_request(scope["method"], route, status, seconds)
            level = logging.DEBUG if scope["path"] in QUIET_PATHS else logging.INFO
            client = scope.get("client")
            access_log.log(
                level,
                "%s %s %d %.1fms",
                scope["method"],
                scope["path"],
                status,
                seconds * 1000,
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                    "client": client[0] if client else None,
                },
            )
            request_id_var.reset(token)


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` when a streamed body passes the limit (FastAPI re-raises it)."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="request body too large")


class AccessMiddleware:
    """API keys, collection scopes and the rate limit for /v1; the body size for everything.

    Everything here is decided from the request line and headers, before the body is read:
    a caller without a valid key cannot make the server spool an upload.
    """

    def __init__(
        self,
        app: ASGIApp,
        keys: KeyRing,
        limiter: RateLimiter,
        max_body_bytes: int,
        metrics_public: bool = True,
    ) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes
        self.metrics_public = metrics_public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        api = path == "/v1" or path.startswith("/v1/")
        guarded = api or (path == "/metrics" and not self.metrics_public)
        if guarded and not await self._admit(scope, receive, send, api):
            return
        await self._limit_body(scope, receive, send)

    def _authenticate(self, headers: Headers) -> Principal | None:
        if not self.keys.enabled:
            return ANONYMOUS
        token = bearer_token(headers.get("authorization"))
        return self.keys.authenticate(token) if token else None

    async def _admit(self, scope: Scope, receive: Receive, send: Send, api: bool) -> bool:
        """Check key, rate and scope; answer the refusal and return False if there is one."""
        headers = Headers(scope=scope)
        principal = self._authenticate(headers)
        if api:
            client = scope.get("client")
            caller = (
                principal.id
                if principal is not None and principal.authenticated
                else f"ip:{client[0] if client else 'unknown'}"
            )
            wait = self.limiter.acquire(caller)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                await send_problem(
                    scope,
                    receive,
                    send,
                    429,
                    "RateLimited",
                    f"too many requests; retry in {retry} s (rate limit: "
                    "RAG_SECURITY__RATE_LIMIT_PER_MINUTE)",
                    {"retry_after": round(wait, 3)},
                    {"Retry-After": str(retry)},
                )
                return False
        if principal is None:
            presented = bearer_token(headers.get("authorization")) is not None
            await send_problem(
                scope,
                receive,
                send,
                401,
                "Unauthorized",
                "the API key is not valid"
                if presented
                else "this server needs an API key: send 'Authorization: Bearer <key>'",
                headers={
                    "WWW-Authenticate": 'Bearer error="invalid_token"' if presented else "Bearer"
                },
            )
            return False
        scope[PRINCIPAL_SCOPE_KEY] = principal
        match = resolve_route(scope) if api else None
        if match is not None:
            write = scope["method"] not in SAFE_METHODS and match.template not in READ_ONLY_POSTS
            name = match.params.get("name")
            error = access_error(principal, str(name) if name is not None else None, write)
            if error is not None:
                await send_problem(scope, receive, send, 403, "Forbidden", error.message)
                return False
        return True

    async def _limit_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body_bytes
        too_large = (
            f"the request body is over the {limit / MB:g} MB limit; send fewer or smaller "
            "files per request, or raise RAG_SECURITY__MAX_UPLOAD_MB"
        )
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_problem(
                scope, receive, send, 413, "PayloadTooLarge", too_large, {"limit_bytes": limit}
            )
            return
        received = 0
        exceeded = False
        replaced = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def replacing_send(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if exceeded and message["type"] == "http.response.start":
                replaced = True
                await send_problem(
                    scope, receive, send, 413, "PayloadTooLarge", too_large, {"limit_bytes": limit}
                )
                return
            await send(message)

        await self.app(scope, counting_receive, replacing_send)


class TimeoutMiddleware:
    """Answers 504 when the app has not started its response within ``seconds``.

    Only the time to the first byte is bounded: a streaming answer (SSE) that has started runs
    to its end. Work already running in a thread finishes in the background; its result is
    dropped.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call."""
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        started = anyio.Event()
        timed_out = False
        error: Exception | None = None

        async def guarded_send(message: Message) -> None:
            if timed_out:
                return
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        async def run() -> None:
            nonlocal error
            try:
                await self.app(scope, receive, guarded_send)
            except Exception as exc:  # re-raised below, outside the task group
                error = exc
            finally:
                started.set()

        async with anyio.create_task_group() as group:
            group.start_soon(run)
            with anyio.move_on_after(self.seconds):
                await started.wait()
            if not started.is_set():
                timed_out = True
                log.warning(
                    "%s %s: no response within %g s; answered 504",
                    scope["method"],
                    scope["path"],
                    self.seconds,
                )
                await send_problem(
                    scope,
                    receive,
                    send,
                    504,
                    "Timeout",
                    f"the request took longer than {self.seconds:g} s; for large uploads use "
                    "?wait=false and poll the job, or raise RAG_SERVER__REQUEST_TIMEOUT_S",
                    {"timeout_s": self.seconds},
                )
                group.cancel_scope.cancel()
        if error is not None and not timed_out:
            raise error


def install_middleware(app: FastAPI, settings: Settings, metrics: Metrics, keys: KeyRing) -> None:
    """Add the middleware in order (the last added runs first) and keep its state on the app."""
    security = settings.security
    limiter = RateLimiter(security.rate_limit_per_minute, security.rate_limit_burst)
    app.state.rate_limiter = limiter
    app.add_middleware(TimeoutMiddleware, seconds=settings.server.request_timeout_s)
    app.add_middleware(
        AccessMiddleware,
        keys=keys,
        limiter=limiter,
        max_body_bytes=int(security.max_upload_mb * MB),
        metrics_public=security.metrics_public,
    )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER, "Retry-After"],
        )
