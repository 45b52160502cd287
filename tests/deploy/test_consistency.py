"""The deployment files name only settings, routes and ports the code has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.main import create_app
from app.settings import describe_settings
from tests.deploy import deployfiles as df

FILES = [df.DOCKERFILE, df.COMPOSE, df.COMPOSE_PGVECTOR, df.ENV_EXAMPLE]
QUOTED_PATH = re.compile(r"'(/[\w./-]*)'")  # '/readyz' in the healthcheck one-liner
HEALTH_PATH = re.compile(r"(/(?:readyz|healthz)\b)")


def known_settings() -> set[str]:
    return {env for env, _, _ in describe_settings()}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_rag_variable_is_a_setting(path: Path) -> None:
    named = set(df.RAG_VAR.findall(path.read_text()))
    assert named, f"{path.name} names no RAG_* variable"
    assert named <= known_settings(), named - known_settings()


def test_every_rag_variable_in_the_readme_deploy_section_is_a_setting() -> None:
    named = set(df.RAG_VAR.findall(df.readme_deploy_section()))
    assert named <= known_settings(), named - known_settings()


def get_routes() -> set[str]:
    """Paths the app answers GET on.

    create_app builds the routes only; models load in the lifespan, which is not entered here.
    FastAPI >= 0.16x keeps included routers in ``app.routes`` as lazy wrappers without a
    ``path``, so the OpenAPI schema (every route of ours is in it) is read as well.
    """
    app = create_app()
    paths = {
        path
        for route in app.routes
        if isinstance(path := getattr(route, "path", None), str)
        and "GET" in (getattr(route, "methods", None) or ())
    }
    paths |= {path for path, ops in app.openapi()["paths"].items() if "get" in ops}
    return paths


def test_health_paths_are_routes_of_the_app() -> None:
    routes = get_routes()
    _, command = df.healthcheck()
    used = set(QUOTED_PATH.findall(" ".join(command)))
    used |= set(QUOTED_PATH.findall(" ".join(df.service("api")["healthcheck"]["test"])))
    used |= set(HEALTH_PATH.findall(df.readme_deploy_section()))
    assert "/readyz" in used
    assert used <= routes, used - routes
