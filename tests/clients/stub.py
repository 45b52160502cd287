"""A tiny HTTP server on loopback that answers from a script, and records what it was sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.loopback import served


@dataclass
class Reply:
    """One scripted answer."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    """One request the stub received."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased


class Stub:
    """Answers the scripted replies in order (the last one again once they run out)."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.seen: list[Seen] = []
        self.url = ""


@contextmanager
def stub_server(replies: list[Reply]) -> Iterator[Stub]:
    """Serve ``replies`` on a free loopback port until the block ends."""
    stub = Stub(replies)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            stub.seen.append(Seen(self.command, self.path, headers))
            reply = stub.replies[min(len(stub.seen), len(stub.replies)) - 1]
            payload = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _answer  # noqa: N815 - http.server's naming

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    with served(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        stub.url = url
        yield stub
