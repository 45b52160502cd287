"""``bench_search_load.wait_ready``: it waits for an ONNX query session only where one will come.

A real HTTP server on loopback answers ``/readyz`` like ragserver does; the CPU's answer to
``auto`` is pinned with monkeypatch (bfloat16: a CPU with native bfloat16, float32: one without).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import bench_search_load as bench


def serve_readyz(query_backend: str) -> tuple[ThreadingHTTPServer, str]:
    body = json.dumps(
        {
            "status": "ready",
            "detail": {"embedding": {"backend": "x", "query_backend": query_backend}},
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process standing for the server (wait_ready checks that it has not exited)."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


def wait(base: str, proc: subprocess.Popen[bytes], setting: str, log: Path, timeout: float) -> dict:  # type: ignore[type-arg]
    return asyncio.run(bench.wait_ready(base, proc, timeout, setting, log))


def test_auto_on_a_native_bfloat16_cpu_does_not_wait_for_onnx(
    monkeypatch: pytest.MonkeyPatch, process: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    monkeypatch.setattr("ingest.backends.resolve_backend", lambda *a, **k: "bfloat16")
    server, base = serve_readyz("same")
    try:
        embedding = wait(base, process, "auto", tmp_path / "server.log", timeout=60)
    finally:
        server.shutdown()
    assert embedding["query_backend"] == "same"


def test_auto_on_float32_waits_for_the_export_or_its_failure(
    monkeypatch: pytest.MonkeyPatch, process: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    monkeypatch.setattr("ingest.backends.resolve_backend", lambda *a, **k: "float32")
    server, base = serve_readyz("float32")
    log = tmp_path / "server.log"
    try:
        with pytest.raises(TimeoutError):  # the export has neither come nor failed
            wait(base, process, "auto", log, timeout=1.5)
        log.write_text("WARNING queries stay on the float32 backend: preparing onnx failed\n")
        assert wait(base, process, "auto", log, timeout=60)["query_backend"] == "float32"
    finally:
        server.shutdown()
