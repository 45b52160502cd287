"""Scaling out: FAISS stays in one process; the Chroma server takes several api processes."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from app.cli import check_workers
from app.settings import Settings
from tests.deploy import deployfiles as df


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "extra_env"),
    [(["--workers", "2"], {}), ([], {"RAG_SERVER__WORKERS": "2"})],
    ids=["flag", "env"],
)
def test_faiss_refuses_a_second_worker_and_says_why(
    tmp_path: Path, args: list[str], extra_env: dict[str, str]
) -> None:
    env = {
        **os.environ,
        **extra_env,
        "RAG_VECTORSTORE__BACKEND": "faiss",
        "RAG_DATA_DIR": str(tmp_path / "data"),
    }
    command = [str(df.VENV_BIN / "ragserver"), "serve", "--port", str(free_port()), *args]
    started = time.monotonic()
    try:
        result = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:  # pragma: no cover - the failure being tested for
        pytest.fail("ragserver serve started 2 workers with the faiss backend")
    assert result.returncode != 0
    assert time.monotonic() - started < 30
    assert "refusing to start 2 workers with the faiss backend" in result.stderr
    assert "one process" in result.stderr  # the reason, not only the refusal
    assert "chroma" in result.stderr  # and the way out
    assert not (tmp_path / "data").exists()  # refused before loading anything


def test_the_compose_configuration_may_run_several_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in df.service_env("api").items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.vectorstore.backend == "chroma"
    assert check_workers(settings, 4) is None
