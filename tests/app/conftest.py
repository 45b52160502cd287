"""Fixtures for HTTP tests: an app over the test's data dir, loaded before use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.services.container import Components
from app.settings import Settings
from ingest.base import Embedder
from llms.base import Generator
from tests.fakes import HashEmbedder


@contextmanager
def running_app(
    settings: Settings, embedder: Embedder | None = None, generator: Generator | None = None
) -> Iterator[TestClient]:
    """A TestClient over ``create_app(settings)``, with the services loaded.

    Without a ``generator`` the answering model is not loaded at start-up.
    """
    if generator is None:
        settings = settings.model_copy(
            update={"llm": settings.llm.model_copy(update={"load_at_startup": False})}
        )
    app = create_app(settings, Components(embedder=embedder, generator=generator))
    with TestClient(app) as client:
        app.state.loader.wait(timeout=300)
        yield client


@pytest.fixture
def settings(_isolated_data_dir: Path) -> Settings:
    """Settings over the test's data dir (faiss, the default backend)."""
    return Settings(data_dir=_isolated_data_dir)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client of an app using the fast deterministic embedder."""
    with running_app(settings, HashEmbedder()) as c:
        yield c
