"""Readers for the deployment files: Dockerfile, .dockerignore, docker-compose.yml, .env.example.

Small and strict on purpose: they understand the subset of each syntax these files use, and a
test fails loudly (rather than passing vacuously) when something is not where it is expected.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_PGVECTOR = ROOT / "docker-compose.pgvector.yml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
ENV_EXAMPLE = ROOT / ".env.example"
README = ROOT / "README.md"
INSTALL_SH = ROOT / "scripts" / "install.sh"
VENV_BIN = Path(sys.executable).parent
RAG_VAR = re.compile(r"\bRAG_[A-Z0-9_]+")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    args: str
    stage: str
    line: int


def dockerfile() -> list[Instruction]:
    """Parse the Dockerfile into instructions, each tagged with its stage's name."""
    instructions: list[Instruction] = []
    stage = ""
    pending = ""
    start = 0
    for number, raw in enumerate(DOCKERFILE.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction is dropped by Docker too
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        pending = ""
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            stage = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
        instructions.append(Instruction(keyword, args.strip(), stage, start))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages() -> list[str]:
    """The stage names in order; the last one is the image."""
    return [i.stage for i in dockerfile() if i.keyword == "FROM"]


def only(keyword: str, stage: str | None = None) -> Instruction:
    """The single instruction ``keyword`` (of ``stage``, if given)."""
    found = [i for i in dockerfile() if i.keyword == keyword and stage in (None, i.stage)]
    assert len(found) == 1, f"expected one {keyword} in stage {stage}, found {found}"
    return found[0]


def env(stage: str) -> dict[str, str]:
    """The ENV values a stage sets (``KEY=VALUE`` form)."""
    values: dict[str, str] = {}
    for instruction in dockerfile():
        if instruction.keyword == "ENV" and instruction.stage == stage:
            for word in shlex.split(instruction.args):
                key, sep, value = word.partition("=")
                assert sep, f"use ENV KEY=VALUE, not {instruction.args!r}"
                values[key] = value
    return values


def exec_form(args: str) -> list[str]:
    """The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK arguments."""
    value = json.loads(args)
    assert isinstance(value, list), args
    assert all(isinstance(item, str) for item in value), args
    return value


def healthcheck() -> tuple[str, list[str]]:
    """The runtime HEALTHCHECK: (its options, its command in exec form)."""
    options, sep, command = only("HEALTHCHECK", stages()[-1]).args.partition("CMD ")
    assert sep, "HEALTHCHECK must use CMD"
    return options.strip(), exec_form(command)


def image_command() -> list[str]:
    """What the image runs: ENTRYPOINT followed by CMD."""
    image = stages()[-1]
    return exec_form(only("ENTRYPOINT", image).args) + exec_form(only("CMD", image).args)


def install_script_calls() -> list[list[str]]:
    """Each call of scripts/install.sh in a RUN of the Dockerfile, as its argument list."""
    calls = []
    for instruction in dockerfile():
        if instruction.keyword != "RUN":
            continue
        words = shlex.split(instruction.args)
        for index, word in enumerate(words):
            if word.endswith("scripts/install.sh"):
                rest = words[index + 1 :]
                end = next((n for n, w in enumerate(rest) if w in {"&&", "||", ";"}), len(rest))
                calls.append(rest[:end])
    return calls


def compose(path: Path = COMPOSE) -> dict[str, Any]:
    """A compose file (docker-compose.yml unless told) as data."""
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def service(name: str, path: Path = COMPOSE) -> dict[str, Any]:
    """One service of a compose file."""
    services = compose(path)["services"]
    assert name in services, f"{path.name} has no service {name!r}"
    value = services[name]
    assert isinstance(value, dict)
    return value


def service_env(name: str, path: Path = COMPOSE) -> dict[str, str]:
    """A service's ``environment`` (mapping form)."""
    value = service(name, path).get("environment", {})
    assert isinstance(value, dict), "write environment as a mapping"
    return {str(k): str(v) for k, v in value.items()}


def env_example_assignments(block: str = "") -> list[tuple[str, str]]:
    """Every ``# NAME=value`` line of .env.example, or of its ``# ==== block...`` part."""
    pattern = re.compile(r"^# ([A-Z][A-Z0-9_]*)=(.*)$")
    found, inside = [], not block
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.startswith("# ==== "):
            inside = not block or line.startswith(f"# ==== {block}")
        elif inside and (m := pattern.match(line)):
            found.append((m.group(1), m.group(2)))
    assert found, f".env.example has no settings in block {block!r}"
    return found


def readme_deploy_section() -> str:
    """The README's "Deploy with docker compose" section."""
    text = README.read_text()
    heading = "## Deploy with docker compose"
    assert heading in text, f"README.md has no {heading!r} section"
    section = text.split(heading, 1)[1]
    return section.split("\n## ", 1)[0]


def dockerignore_patterns() -> list[str]:
    """The .dockerignore patterns, in order."""
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    pattern = pattern.strip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str) -> bool:
    """Whether Docker leaves ``path`` (relative to the context) out of the build context.

    Like Docker: the last matching pattern wins, ``!`` re-includes, and a pattern that matches
    a folder leaves out everything under it.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for pattern in dockerignore_patterns():
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.removeprefix("!"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
