"""The healthcheck commands of the Dockerfile and docker-compose.yml, run for real.

A container is too heavy here, so each command runs as written against a tiny HTTP server on a
free loopback port that answers like the real one (200 when ready, 503 while loading), and
against a port nobody listens on.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.deploy import deployfiles as df


class FakeServer:
    """Answers ``path`` with ``status`` and everything else with 404; records the paths asked."""

    def __init__(self, path: str, status: int) -> None:
        self.requested: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requested.append(self.path)
                code = status if self.path == path else 404
                body = b'{"status":"ok"}' if code == 200 else b'{"status":"loading"}'
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with no listener (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_api_healthcheck(port: int) -> int:
    """Run the Dockerfile's HEALTHCHECK command with the server on ``port``."""
    _, command = df.healthcheck()
    assert command[0] == "python"  # /opt/venv/bin/python in the image; the same code here
    env = {**os.environ, "RAG_SERVER__PORT": str(port)}
    return subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, timeout=30, check=False
    ).returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_api_healthcheck_follows_readyz(status: int, healthy: bool) -> None:
    with FakeServer("/readyz", status) as server:
        code = run_api_healthcheck(server.port)
    assert server.requested == ["/readyz"]
    assert (code == 0) is healthy


def test_api_healthcheck_fails_when_nothing_listens(closed_port: int) -> None:
    assert run_api_healthcheck(closed_port) != 0


def run_chroma_healthcheck(port: int) -> int:
    """Run docker-compose.yml's Chroma healthcheck, aimed at ``port`` instead of 8000."""
    test = df.service("chroma")["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    script = test[3].replace("/dev/tcp/127.0.0.1/8000", f"/dev/tcp/127.0.0.1/{port}")
    assert script != test[3]
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, "-c", script], capture_output=True, timeout=30, check=False
    ).returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (500, False)])
def test_chroma_healthcheck_follows_the_heartbeat(status: int, healthy: bool) -> None:
    with FakeServer("/api/v2/heartbeat", status) as server:
        code = run_chroma_healthcheck(server.port)
    assert server.requested == ["/api/v2/heartbeat"]
    assert (code == 0) is healthy


def test_chroma_healthcheck_fails_when_nothing_listens(closed_port: int) -> None:
    assert run_chroma_healthcheck(closed_port) != 0
