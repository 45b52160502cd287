"""How long ``ragserver serve`` takes to exit on SIGTERM while a background upload runs.

Usage::

    .venv/bin/python bench/sigterm_exit.py [--files 20] [--cap 120]

Starts a real ``ragserver serve`` (default settings: FAISS, the bundled MiniLM; the answering
model is not loaded) on a fresh data directory, uploads ``--files`` pages of the Python 3.11
docs with ``?wait=false``, sends SIGTERM once the job reports its first stored file, and
times the process until it exits (SIGKILL after ``--cap`` seconds). It then starts a second
server on the same data directory and reports what ``/v1/jobs/{id}`` says there, and the
documents stored once that job has settled.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
DOCS = Path("/usr/share/doc/python3.11/html/library")
RAGSERVER = Path(sys.executable).with_name("ragserver")


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``ragserver serve`` and wait for /readyz."""
    port = free_port()
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(data_dir),
        "RAG_LLM__LOAD_AT_STARTUP": "false",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [str(RAGSERVER), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server not ready; see {log}")


def wait_job(url: str, job_id: str, until: Any, cap: float = 600) -> dict[str, Any]:
    """Poll the job until ``until(job)`` holds; returns the last answer's JSON."""
    deadline = time.monotonic() + cap
    while True:
        answer = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10)
        body: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
        body["http_status"] = answer.status_code
        if until(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def main() -> None:
    """Run the measurement and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--cap", type=float, default=120)
    args = parser.parse_args()
    pages = sorted(p for p in DOCS.glob("*.html") if p.stat().st_size > 30_000)[: args.files]
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        log = Path(tmp) / "server.log"
        proc, url = start(data_dir, log)
        files = [("files", (p.name, p.read_bytes(), "text/html")) for p in pages]
        answer = httpx.post(
            f"{url}/v1/collections/default/documents?wait=false", files=files, timeout=120
        )
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        wait_job(url, job_id, lambda j: j.get("files_done", 0) >= 1 or j.get("finished_at"))
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=args.cap)
            print(f"exit after SIGTERM: {time.monotonic() - sent:.1f} s (status {proc.returncode})")
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            print(f"still running {args.cap:.0f} s after SIGTERM: killed")
        proc2, url2 = start(data_dir, log)
        try:
            job = wait_job(url2, job_id, lambda j: j["http_status"] != 200 or j.get("finished_at"))
            docs = httpx.get(f"{url2}/v1/collections/default/documents?limit=1000").json()
            print(
                f"after restart: GET /v1/jobs/{{id}} -> {job['http_status']}, "
                f"state {job.get('state')}, files_done {job.get('files_done')}/"
                f"{len(pages)}; documents stored: {docs['total']}"
            )
            if job["http_status"] != 200:
                print("\n".join(log.read_text().splitlines()[-30:]))
        finally:
            proc2.send_signal(signal.SIGTERM)
            try:
                proc2.wait(timeout=args.cap)
            except subprocess.TimeoutExpired:
                proc2.kill()


if __name__ == "__main__":
    main()
