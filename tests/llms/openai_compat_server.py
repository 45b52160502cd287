"""A minimal OpenAI-compatible server for tests, wrapping a real ``Generator``.

Routes, each under three prefixes that pick a behaviour:

- ``/v1/...``: serves the wrapped generator (``POST /v1/chat/completions`` with and without
  ``stream``, in OpenAI's JSON and SSE chunk formats; ``GET /v1/models``).
- ``/error/v1/...``: answers 500 with an OpenAI-style error body.
- ``/slow/v1/...``: sleeps ``slow_s`` seconds before answering, to run past a client timeout.

``hits`` counts requests per behaviour, so tests can see the client's retries.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any, Literal

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from llms.base import GenerationParams, Generator, Message

Mode = Literal["ok", "error", "slow"]


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    model: str
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    stop: str | list[str] | None = None
    stream: bool = False


def create_compat_app(generator: Generator, *, slow_s: float = 3.0) -> FastAPI:
    app = FastAPI()
    app.state.hits = Counter()

    def router(mode: Mode) -> APIRouter:
        api = APIRouter()

        @api.get("/models")
        async def models() -> dict[str, Any]:
            app.state.hits[mode] += 1
            model = {"id": generator.model_name, "object": "model", "owned_by": "ragserver-tests"}
            return {"object": "list", "data": [model]}

        @api.post("/chat/completions", response_model=None)
        async def chat(request: ChatRequest) -> JSONResponse | StreamingResponse | dict[str, Any]:
            app.state.hits[mode] += 1
            if mode == "error":
                body = {"error": {"message": "the test server fails on purpose", "type": "server"}}
                return JSONResponse(body, status_code=500)
            if mode == "slow":
                await asyncio.sleep(slow_s)
            messages: list[Message] = [
                {"role": m.role, "content": m.content} for m in request.messages
            ]
            stop = [request.stop] if isinstance(request.stop, str) else (request.stop or [])
            params = GenerationParams(
                max_new_tokens=request.max_completion_tokens or request.max_tokens or 256,
                temperature=request.temperature or 0.0,
                stop=tuple(stop),
            )
            if request.stream:
                return StreamingResponse(
                    _sse(generator, messages, params, request.model),
                    media_type="text/event-stream",
                )
            completion = await asyncio.to_thread(generator.generate, messages, params)
            return {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": completion.text},
                        "finish_reason": completion.finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": completion.prompt_tokens,
                    "completion_tokens": completion.completion_tokens,
                    "total_tokens": completion.prompt_tokens + completion.completion_tokens,
                },
            }

        return api

    app.include_router(router("ok"), prefix="/v1")
    app.include_router(router("error"), prefix="/error/v1")
    app.include_router(router("slow"), prefix="/slow/v1")
    return app


def _sse(
    generator: Generator, messages: list[Message], params: GenerationParams, model: str
) -> Iterator[str]:
    """Yield OpenAI ``chat.completion.chunk`` events; Starlette runs this in a thread."""
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict[str, str], finish_reason: str | None) -> str:
        body = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    for delta in generator.stream(messages, params):
        yield chunk({"content": delta}, None)
    yield chunk({}, "stop")
    yield "data: [DONE]\n\n"


class LoopbackServer:
    """Runs an ASGI app with uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test OpenAI-compatible server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()
