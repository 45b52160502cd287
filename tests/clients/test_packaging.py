"""ragserver-client stands on its own: httpx only, the frameworks as extras, no server code."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
SERVER_SIDE = ("app", "core", "ingest", "vectorstores", "prompts", "llms", "fastapi", "torch")


def test_the_distribution_depends_on_httpx_alone() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "ragserver-client"
    assert [d.split(">")[0] for d in project["dependencies"]] == ["httpx"]
    extras = project["optional-dependencies"]
    assert set(extras) == {"langchain", "llama-index"}
    assert extras["langchain"][0].startswith("langchain-core")
    assert extras["llama-index"][0].startswith("llama-index-core")


def test_importing_the_client_loads_no_framework_and_no_server_code() -> None:
    code = (
        "import sys, ragserver_client; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(done.stdout.split())
    assert "httpx" in loaded
    assert not loaded & {"langchain_core", "llama_index", *SERVER_SIDE}, loaded
