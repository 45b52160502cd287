"""Helpers for the security tests: apps with keys, and uploads over HTTP."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.settings import SecuritySettings, Settings
from tests.app.conftest import running_app
from tests.fakes import HashEmbedder

ADMIN = "admin-key-0123456789"
DOCS_RO = "docs-reader-0123456789"
DOCS_RW = "docs-writer-0123456789"
ALL_RO = "auditor-0123456789"
KEYS = [ADMIN, f"{DOCS_RO}:docs:ro", f"{DOCS_RW}:docs+notes:rw", f"{ALL_RO}:*:ro"]


@pytest.fixture
def settings(_isolated_data_dir: Path) -> Settings:
    """Settings over the test's data dir (faiss, the default backend), no keys."""
    return Settings(data_dir=_isolated_data_dir)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def with_security(settings: Settings, **fields: Any) -> Settings:
    """``settings`` with its security section changed."""
    security = settings.security.model_dump() | fields
    return settings.model_copy(update={"security": SecuritySettings(**security)})


@contextmanager
def secured_app(settings: Settings, **fields: Any) -> Iterator[TestClient]:
    """An app with the test keys (and any other security fields)."""
    with running_app(with_security(settings, api_keys=KEYS, **fields), HashEmbedder()) as client:
        yield client


def app_of(client: TestClient) -> FastAPI:
    """The FastAPI app behind a TestClient (typed as a plain ASGI app there)."""
    app = client.app
    assert isinstance(app, FastAPI)
    return app


def upload(
    client: TestClient,
    files: list[tuple[str, bytes]],
    collection: str = "default",
    headers: dict[str, str] | None = None,
) -> Any:
    return client.post(
        f"/v1/collections/{collection}/documents",
        files=[("files", (name, io.BytesIO(data))) for name, data in files],
        headers=headers,
    )
