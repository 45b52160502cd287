"""Real ``ragserver serve`` and ``ragserver worker`` processes (the installed console script).

Each process gets its own data directory and log; the bundled MiniLM embeds (the answering
model is not loaded). Readiness is an event: ``/readyz`` answering 200, or the worker's
"worker ready" log line.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
RAGSERVER = Path(sys.executable).with_name("ragserver")
DOCS = Path("/usr/share/doc/python3.11/html/library")
SAFETY_S = 300.0  # a safety net for waits that end on an event


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def doc_pages(n: int) -> list[Path]:
    """``n`` real HTML pages of the Python docs, 12 to 25 kB each."""
    pages = sorted(p for p in DOCS.glob("*.html") if 12_000 < p.stat().st_size < 25_000)
    assert len(pages) >= n, "the python3.11-doc package is needed"
    return pages[:n]


def until(check: Callable[[], Any], what: str, timeout: float = SAFETY_S) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` past the net."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


class Ragserver:
    """One ``ragserver serve`` (or ``worker``) process."""

    def __init__(
        self, root: Path, name: str, env: Mapping[str, str], command: str = "serve"
    ) -> None:
        self.name = name
        self.data_dir = root / name
        self.log = root / f"{name}.log"
        self.env = dict(env)
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Ragserver:
        """Start the process (without waiting for it to be ready)."""
        env = {
            **os.environ,
            "RAG_DATA_DIR": str(self.data_dir),
            "RAG_LLM__LOAD_AT_STARTUP": "false",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONPATH": str(ROOT),
            **self.env,
        }
        args = [str(RAGSERVER), self.command]
        if self.command == "serve":
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            args += ["--host", "127.0.0.1", "--port", str(port)]
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=self.data_dir.parent,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        return self

    def logged(self, text: str) -> bool:
        """Whether the log holds ``text``."""
        return self.log.exists() and text in self.log.read_text(errors="replace")

    def ready(self) -> Ragserver:
        """Wait until the server answers /readyz 200 (a worker: logs that it is ready)."""

        def check() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.tail()}")
            if self.command != "serve":
                return self.logged("worker ready")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        until(check, f"{self.name} to be ready")
        return self

    def kill(self) -> None:
        """SIGKILL, as in a crash, and reap the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=60)

    def terminate(self, timeout: float = 60.0) -> float:
        """SIGTERM; the seconds until the process exited."""
        assert self.proc is not None
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return float("inf")
        return time.monotonic() - sent

    def stop(self) -> None:
        """Stop it whatever its state (teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()  # kills it when it does not exit

    def tail(self, lines: int = 30) -> str:
        """The end of its log."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # -- the HTTP API -------------------------------------------------------------------

    def upload(self, pages: list[Path], *, wait: bool) -> httpx.Response:
        """Upload files to the default collection."""
        files = [("files", (p.name, p.read_bytes(), "text/html")) for p in pages]
        return httpx.post(
            f"{self.url}/v1/collections/default/documents",
            params={"wait": str(wait).lower()},
            files=files,
            timeout=SAFETY_S,
        )

    def job(self, job_id: str) -> dict[str, Any]:
        """GET /v1/jobs/{id} (its JSON, with the status as ``http_status``)."""
        answer = httpx.get(f"{self.url}/v1/jobs/{job_id}", timeout=30)
        body: dict[str, Any] = answer.json()
        body["http_status"] = answer.status_code
        return body

    def finished_job(self, job_id: str) -> dict[str, Any]:
        """Poll the job until it has finished."""
        return until(  # type: ignore[no-any-return]
            lambda: (j := self.job(job_id)).get("finished_at") and j, f"job {job_id} to finish"
        )

    def documents(self) -> list[dict[str, Any]]:
        """Every document of the default collection."""
        answer = httpx.get(
            f"{self.url}/v1/collections/default/documents", params={"limit": 1000}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return list(answer.json()["documents"])

    def chunk_positions(self, document_id: str) -> list[int]:
        """The positions of a document's stored chunks."""
        answer = httpx.get(
            f"{self.url}/v1/collections/default/documents/{document_id}/chunks", timeout=30
        )
        assert answer.status_code == 200, answer.text
        return [c["position"] for c in answer.json()["chunks"]]

    def assert_stored_once(self, sources: list[str]) -> None:
        """Each source is one document whose chunks are stored once each."""
        docs = [d for d in self.documents() if d["source"] in sources]
        assert sorted(d["source"] for d in docs) == sorted(sources)
        for doc in docs:
            positions = self.chunk_positions(doc["id"])
            assert len(positions) == len(set(positions)) == doc["chunks"] > 0, doc["source"]
