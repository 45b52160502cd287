"""Print .env.example, or rewrite it in place with --write.

Every setting of ``describe_settings()`` appears, commented, with its description and default,
so a test can keep the file in step with ``app/settings.py``.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from app.settings import Settings, describe_settings

# docker-compose.yml sets these for the api service; its `environment` wins over .env.
COMPOSE_FIXED = (
    "RAG_DATA_DIR",
    "RAG_SERVER__PORT",
    "RAG_VECTORSTORE__BACKEND",
    "RAG_VECTORSTORE__CHROMA__URL",
)
# docker-compose.pgvector.yml sets these for its api service.
PGVECTOR_COMPOSE_FIXED = (
    "RAG_DATA_DIR",
    "RAG_SERVER__PORT",
    "RAG_VECTORSTORE__BACKEND",
    "RAG_VECTORSTORE__PGVECTOR__URL",
    "RAG_JOBS__WORKERS",
)
# Where the Dockerfile decides instead of the setting's default.
IMAGE_NOTES = {"RAG_SERVER__HOST": "The image's CMD serves on all interfaces (--host 0.0.0.0)."}

HEADER = """\
# ragserver configuration. Generated from app/settings.py by `python scripts/env_example.py
# --write`; tests/deploy checks that it is in step, so edit the script, not this file.
#
# Copy it to .env:  cp .env.example .env
#   - docker compose passes .env to the api container and reads it for ${...} in
#     docker-compose.yml; `make run` and `ragserver serve` read ./.env too.
#   - Every line is commented. Uncomment one and change its value to change the setting; a
#     commented line keeps the default shown. Lists are JSON: ["a", "b"]. A line with nothing
#     after = is unset by default: give it a value or leave it commented (empty is not unset).

# ==== docker compose only (not read by ragserver) ====
# Host port(s) of the api; a range such as 8000-8002 for `docker compose up --scale api=3`.
# API_PORT=8000
# Start the optional services of these profiles with a plain `docker compose up`.
# COMPOSE_PROFILES=ollama

# ==== docker-compose.pgvector.yml: PostgreSQL + pgvector instead of Chroma ====
# `docker compose -f docker-compose.pgvector.yml up -d` needs the password of its database
# user (URL-safe characters: letters, digits, - . _ ~); it wires the api to the database.
# POSTGRES_PASSWORD=

# ==== the ollama profile: answer with a local OpenAI-compatible server ====
# `docker compose --profile ollama up -d` starts ollama and pulls RAG_LLM__MODEL into it.
# Uncomment these four to make the api use it (ollama ignores the key; any value will do).
# RAG_LLM__BACKEND=openai
# RAG_LLM__BASE_URL=http://ollama:11434/v1
# RAG_LLM__MODEL=qwen2.5:1.5b
# RAG_LLM__API_KEY=ollama
"""


def _field(env: str) -> FieldInfo:
    """Find the settings field behind an environment variable such as ``RAG_LLM__MODEL``."""
    model: type[BaseModel] = Settings
    *sections, name = env.removeprefix("RAG_").lower().split("__")
    for section in sections:
        annotation = model.model_fields[section].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            raise KeyError(f"{env}: {section} is not a settings section")
        model = annotation
    return model.model_fields[name]


def _value(env: str, shown: str) -> str:
    """Render a default the way the environment parser reads it back (lists as JSON)."""
    default = _field(env).get_default(call_default_factory=True)
    return json.dumps(default) if isinstance(default, list) else shown


def render() -> str:
    """Render .env.example."""
    lines = [HEADER.rstrip("\n"), "", "# ==== every setting, with its default ===="]
    section = ""
    for env, shown, description in describe_settings():
        parts = env.removeprefix("RAG_").split("__")
        current = parts[0].lower() if len(parts) > 1 else ""
        if current != section:
            section = current
            lines += ["", f"# ---- {section}: {Settings.model_fields[section].description} ----"]
        notes = [description]
        if _field(env).get_default(call_default_factory=True) is None:
            notes.append("Unset by default.")
        fixed_by = [
            name
            for name, fixed in (
                ("docker-compose.yml", COMPOSE_FIXED),
                ("docker-compose.pgvector.yml", PGVECTOR_COMPOSE_FIXED),
            )
            if env in fixed
        ]
        if fixed_by:
            verb = "sets" if len(fixed_by) == 1 else "set"
            notes.append(f"{' and '.join(fixed_by)} {verb} it for the api service.")
        if env in IMAGE_NOTES:
            notes.append(IMAGE_NOTES[env])
        lines += [
            "# " + line for line in textwrap.wrap(" ".join(notes), 97, break_on_hyphens=False)
        ]
        lines.append(f"# {env}={_value(env, shown)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if "--write" in sys.argv:
        (Path(__file__).resolve().parent.parent / ".env.example").write_text(render())
    else:
        sys.stdout.write(render())
