"""The README's Python examples run as written against a live server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.live import LiveServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README_URL = "http://127.0.0.1:8000"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def examples() -> list[str]:
    """Every Python block of the README that talks to a server at the documented address."""
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    return [b for b in blocks if README_URL in b]


def test_the_readme_has_an_example_for_each_way_in() -> None:
    text = "\n".join(examples())
    for needle in (
        "from ragserver_client import Client",
        "ragserver_client.langchain",
        "ragserver_client.llama_index",
        "client.embeddings.create",
        "client.chat.completions.create",
    ):
        assert needle in text, needle


def test_the_readme_examples_run(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)  # the client example uploads README.md by its relative path
    outputs = []
    for block in examples():
        exec(compile(block.replace(README_URL, live_server.url), "README.md", "exec"), {})  # noqa: S102
        outputs.append(capsys.readouterr().out)
    chat, client, langchain, llama_index, embeddings = outputs  # in the README's order
    assert chat.strip()  # an answer, from the collection as the README leaves it
    assert "README.md" in client
    assert "[1]" in client
    assert langchain.rstrip().endswith("Run make test.")
    assert "README.md" in langchain
    assert llama_index.rstrip().endswith("README.md")
    assert embeddings.split()[0] == "384"
