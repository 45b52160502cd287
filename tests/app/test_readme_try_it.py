"""The README's "Try it" section, run as written against a real server on loopback.

Every command of the section's code blocks is taken from the README and run with bash from
the repository root (the Python block with the interpreter), after two substitutions: the
server's address for ``127.0.0.1:8000`` / ``localhost:8000``, and the installed ``ragserver``
script for ``.venv/bin/ragserver``. ``make run &`` is the one line not run: the test starts
the server itself (``tests.reliability.launcher``: the hash embedder and the echo generator),
on the data directory the commands are given, so a CLI command that forgot ``--server`` would
meet the server's lock and fail. A step the README changes without the code, or the code
without the README, fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.server import ROOT, ServerProcess, running_server

README = ROOT / "README.md"
FENCE = re.compile(r"```(bash|python)\n(.*?)```", re.S)
COMMENT = re.compile(r"\s{2,}#.*$")
ADDRESS = re.compile(r"(?:http://)?(?:127\.0\.0\.1|localhost):8000")
WAIT_FOR = re.compile(r"#\s*wait for:\s*(.*?)\s*->\s*(\S+)")


def try_it_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Try it\n")
    return text[start : text.index("\n## ", start + 1)]


def commands(block: str) -> list[str]:
    """A bash block's commands: continuation lines joined, trailing comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [COMMENT.sub("", line).strip() for line in joined.splitlines() if line.strip()]


def blocks() -> list[tuple[str, str]]:
    return FENCE.findall(try_it_section())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("readme") / "data") as proc:
        yield proc


def localize(command: str, server: ServerProcess) -> str:
    script = Path(sys.executable).with_name("ragserver")
    command = command.replace(".venv/bin/ragserver", str(script))
    return ADDRESS.sub(server.url, command)


def run(argv: list[str], server: ServerProcess) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RAG_DATA_DIR": str(server.data_dir),
        "RAG_EMBEDDING__QUERY_BACKEND": "same",
    }
    proc = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"{argv}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc.stdout


def check_output(command: str, out: str) -> None:
    """curl must get a success body; the CLI commands must say what they did."""
    if command.startswith("curl"):
        body = json.loads(out)
        assert "error" not in body, f"{command}\n{out}"
    elif " ingest " in command:
        assert "failed 0" in out, out
    elif " search " in command:
        assert out.splitlines()[0].lstrip().startswith("1. "), out
    elif " ask " in command:
        assert "Sources:" in out, out


def test_the_readme_try_it_section_works_as_written(server: ServerProcess) -> None:
    ran = 0
    for language, block in blocks():
        if language == "python":
            run([sys.executable, "-c", localize(block, server)], server)
            ran += 1
            continue
        raw_lines = block.splitlines()
        for command in commands(block):
            if command.startswith("make run"):
                waited = next(WAIT_FOR.search(line) for line in raw_lines if "make run" in line)
                assert waited is not None, "the make run line says what to wait for"
                probe, expected = waited.groups()
                got = json.loads(run(["bash", "-c", localize(probe, server)], server))
                assert got["status"] == json.loads(expected)["status"]
                ran += 1
                continue
            out = run(["bash", "-c", localize(command, server)], server)
            check_output(command, out)
            ran += 1
    assert ran >= 9, f"only {ran} commands found in the README's Try it section"
