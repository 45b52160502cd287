"""Request limits over HTTP: rate, body size, files, question and history, timeout, CORS."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from starlette.types import Message

from app.middleware import AccessMiddleware
from app.security import KeyRing, RateLimiter
from app.settings import ServerSettings, Settings
from tests.app.conftest import running_app
from tests.fakes import EchoGenerator, HashEmbedder
from tests.security.conftest import (
    ADMIN,
    DOCS_RO,
    app_of,
    bearer,
    secured_app,
    upload,
    with_security,
)


def frozen_clock(client: TestClient) -> list[float]:
    """Stop the app's rate-limit clock: time moves only when the test adds to the returned list.

    On the wall clock, a slow or busy machine refills tokens between the requests of a burst.
    """
    now = [1000.0]
    app_of(client).state.rate_limiter.clock = lambda: now[0]
    return now


def test_rate_limit_per_key_429_with_retry_after_then_recovers(settings: Settings) -> None:
    # 600 a minute is one token every 0.1 s.
    with secured_app(settings, rate_limit_per_minute=600, rate_limit_burst=3) as client:
        now = frozen_clock(client)
        answers = [client.get("/v1/collections", headers=bearer(ADMIN)) for _ in range(4)]
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        limited = answers[3]
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "1"
        error = limited.json()["error"]
        assert error["type"] == "RateLimited"
        assert 0 < error["detail"]["retry_after"] <= 0.1 + 1e-6
        # Another key has its own bucket; health is never limited.
        assert client.get("/v1/collections", headers=bearer(DOCS_RO)).status_code == 200
        assert client.get("/healthz").status_code == 200
        now[0] += error["detail"]["retry_after"] / 2  # not yet
        assert client.get("/v1/collections", headers=bearer(ADMIN)).status_code == 429
        now[0] += error["detail"]["retry_after"]  # one token later (the refused call took none)
        assert client.get("/v1/collections", headers=bearer(ADMIN)).status_code == 200


def test_rate_limit_keys_anonymous_callers_by_address(settings: Settings) -> None:
    limited = with_security(settings, rate_limit_per_minute=60, rate_limit_burst=2)
    with running_app(limited, HashEmbedder()) as client:
        frozen_clock(client)
        codes = [client.get("/v1/collections").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert app_of(client).state.rate_limiter._buckets.keys() == {"ip:testclient"}


def test_rate_limit_also_slows_wrong_keys(settings: Settings) -> None:
    with secured_app(settings, rate_limit_per_minute=60, rate_limit_burst=2) as client:
        frozen_clock(client)
        codes = [
            client.get("/v1/collections", headers=bearer("guess")).status_code for _ in range(3)
        ]
        assert codes == [401, 401, 429]


def test_declared_body_over_the_limit_is_413_before_reading(settings: Settings) -> None:
    small = with_security(settings, max_upload_mb=0.01)  # 10 kB
    with running_app(small, HashEmbedder()) as client:
        resp = upload(client, [("big.txt", b"word " * 5000)])
        assert resp.status_code == 413
        error = resp.json()["error"]
        assert error["type"] == "PayloadTooLarge"
        assert "RAG_SECURITY__MAX_UPLOAD_MB" in error["message"]
        assert client.get("/v1/collections/default").json()["documents"] == 0
        # Under the limit is fine.
        assert upload(client, [("small.txt", b"A short text about kites.")]).status_code == 201


def test_chunked_body_over_the_limit_is_413_while_streaming(settings: Settings) -> None:
    small = with_security(settings, max_upload_mb=0.01)
    boundary = "ragserverboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield head
        for _ in range(40):
            yield b"word " * 200
        yield tail

    with running_app(small, HashEmbedder()) as client:
        resp = client.post(
            "/v1/collections/default/documents",
            content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert resp.status_code == 413, resp.text
        assert resp.json()["error"]["type"] == "PayloadTooLarge"
        assert client.get("/v1/collections/default").json()["documents"] == 0


def test_oversized_content_length_is_refused_without_calling_receive() -> None:
    called: list[str] = []

    async def app(scope: object, receive: object, send: object) -> None:
        called.append("app")

    async def receive() -> Message:
        called.append("receive")
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = AccessMiddleware(app, KeyRing(), RateLimiter(0, 1), max_body_bytes=100)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/collections/default/documents",
        "headers": [(b"content-length", b"101")],
        "client": ("127.0.0.1", 1),
    }
    asyncio.run(middleware(scope, receive, send))
    assert called == []
    assert sent[0]["status"] == 413


def test_too_many_files_is_a_clear_4xx(settings: Settings) -> None:
    few = with_security(settings, max_files_per_request=2)
    with running_app(few, HashEmbedder()) as client:
        resp = upload(client, [(f"f{i}.txt", b"Some words here.") for i in range(3)])
        assert resp.status_code == 422
        assert "at most 2" in resp.json()["error"]["message"]


def test_file_over_max_file_mb_is_413(settings: Settings) -> None:
    ingest = settings.ingest.model_copy(update={"max_file_mb": 0.001})
    with running_app(settings.model_copy(update={"ingest": ingest}), HashEmbedder()) as client:
        resp = upload(client, [("big.txt", b"word " * 1000)])
        assert resp.status_code == 413
        assert "MAX_FILE_MB" in resp.json()["error"]["message"]


def test_top_k_over_the_maximum_is_422(settings: Settings) -> None:
    with running_app(settings, HashEmbedder()) as client:
        too_many = settings.retrieval.max_top_k + 1
        resp = client.post("/v1/collections/default/search", json={"query": "x", "top_k": too_many})
        assert resp.status_code == 422


def query_route_exists(client: TestClient) -> bool:
    resp = client.post("/v1/collections/default/query", json={"question": "probe"})
    return not (resp.status_code == 404 and resp.json()["error"]["type"] == "NotFound")


def test_question_and_history_limits_over_http(settings: Settings) -> None:
    limited = with_security(settings, max_question_chars=50, max_history_messages=2)
    with running_app(limited, HashEmbedder(), EchoGenerator()) as client:
        if not query_route_exists(client):
            pytest.skip("POST /v1/collections/{name}/query is not registered")
        long_question = client.post("/v1/collections/default/query", json={"question": "x" * 51})
        assert long_question.status_code == 422, long_question.text
        assert "MAX_QUESTION_CHARS" in long_question.json()["error"]["message"]
        history = [{"role": "user", "content": "hi"}] * 3
        long_history = client.post(
            "/v1/collections/default/query", json={"question": "why?", "history": history}
        )
        assert long_history.status_code == 422, long_history.text
        assert "MAX_HISTORY_MESSAGES" in long_history.json()["error"]["message"]


def timed_settings(settings: Settings, seconds: float) -> Settings:
    server = ServerSettings(request_timeout_s=seconds)
    return settings.model_copy(update={"server": server})


def test_slow_request_is_504_problem_json(settings: Settings) -> None:
    # 2 s: the healthy requests below must not hit the bound on a busy machine.
    with running_app(timed_settings(settings, 2.0), HashEmbedder()) as client:

        async def slow() -> dict[str, str]:
            await asyncio.Event().wait()  # never answers by itself
            return {"never": "sent"}

        app_of(client).add_api_route("/v1/slow", slow)
        started = time.monotonic()
        resp = client.get("/v1/slow", headers={"X-Request-ID": "slow-1"})
        assert time.monotonic() - started < 30
        assert resp.status_code == 504
        error = resp.json()["error"]
        assert error["type"] == "Timeout"
        assert "RAG_SERVER__REQUEST_TIMEOUT_S" in error["message"]
        assert resp.headers["X-Request-ID"] == "slow-1"
        assert client.get("/v1/collections").status_code == 200


def test_started_stream_is_not_cut_by_the_timeout(settings: Settings) -> None:
    with running_app(timed_settings(settings, 1.0), HashEmbedder()) as client:

        async def events() -> AsyncIterator[str]:
            for i in range(6):
                yield f"data: {i}\n\n"  # the first at once, the last 2.5 s later
                await asyncio.sleep(0.5)

        async def stream() -> StreamingResponse:
            return StreamingResponse(events(), media_type="text/event-stream")

        app_of(client).add_api_route("/v1/stream", stream)
        resp = client.get("/v1/stream")
        assert resp.status_code == 200
        assert resp.text.count("data:") == 6


def test_cors_is_off_by_default_and_on_when_configured(settings: Settings) -> None:
    origin = {"Origin": "https://app.example"}
    with running_app(settings, HashEmbedder()) as client:
        resp = client.get("/v1/collections", headers=origin)
        assert "access-control-allow-origin" not in resp.headers
    server = ServerSettings(cors_origins=["https://app.example"])
    with secured_app(settings.model_copy(update={"server": server})) as client:
        preflight = client.options(
            "/v1/collections",
            headers={
                **origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        denied = client.get("/v1/collections", headers=origin)
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == "https://app.example"
        other = client.get("/v1/collections", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_upload_within_limits_still_works(settings: Settings) -> None:
    with secured_app(settings, max_upload_mb=1) as client:
        resp = client.post(
            "/v1/collections/default/documents",
            files=[("files", ("ok.txt", io.BytesIO(b"Kites fly in steady wind.")))],
            headers=bearer(ADMIN),
        )
        assert resp.status_code == 201


@pytest.mark.parametrize("offset", ["605127813689118556160", "9223372036854775808"])
def test_huge_offset_is_422_not_500(settings: Settings, offset: str) -> None:
    """Found by schemathesis: SQLite could not take the offset, and the listing answered 500."""
    with running_app(settings, HashEmbedder()) as client:
        resp = client.get(f"/v1/collections/default/documents?offset={offset}")
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["type"] == "InvalidRequest"
