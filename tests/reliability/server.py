"""Start, await and kill a real ragserver process (``tests.reliability.launcher``) on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """One server process; ``url`` is its base URL once ``start`` returns."""

    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = dict(env or {})
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.log_path = data_dir.parent / f"server-{data_dir.name}.log"

    def start(self, timeout: float = 120.0) -> str:
        """Start the server and wait until /readyz answers 200; return its base URL."""
        env = {
            **os.environ,
            "RAG_DATA_DIR": str(self.data_dir),
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(ROOT),
            **self.env,
        }
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.launcher"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.kill()
            raise RuntimeError(f"launcher did not start: {line!r}; see {self.log_path}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; {self.log_path}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server not ready in {timeout} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL the server: no shutdown handler runs, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM), or kill it if it does not exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""


@contextmanager
def running_server(data_dir: Path, env: Mapping[str, str] | None = None) -> Iterator[ServerProcess]:
    """A started server, stopped at exit."""
    server = ServerProcess(data_dir, env)
    server.start()
    try:
        yield server
    finally:
        server.stop()
