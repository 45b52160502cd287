"""The backend registry: names to lazily imported factories."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import Settings
from core.errors import ConfigurationError
from vectorstores.base import VectorStoreClient
from vectorstores.registry import BACKENDS, create_client


def test_known_backends() -> None:
    assert sorted(BACKENDS) == ["chroma", "faiss", "memory", "pgvector"]


def test_unknown_backend_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="chroma, faiss, memory, pgvector"):
        create_client("qdrant", tmp_path, {})


@pytest.mark.parametrize("backend", ["memory", "faiss", "chroma"])
def test_create_from_settings(tmp_path: Path, backend: str) -> None:
    vs = Settings(data_dir=tmp_path).vectorstore
    options = getattr(vs, backend).model_dump() if hasattr(vs, backend) else {}
    client = create_client(backend, tmp_path, options)
    assert isinstance(client, VectorStoreClient)
    assert client.backend == backend
    client.close()


def test_faiss_options_from_settings(tmp_path: Path) -> None:
    from vectorstores.faiss_client import FaissClient

    client = create_client("faiss", tmp_path, {"index": "hnsw", "hnsw_m": 8, "hnsw_ef_search": 16})
    assert isinstance(client, FaissClient)
    store = client.create_collection("notes", "m", 4)
    assert store._index.kind == "hnsw"  # noqa: SLF001
    client.close()
    with pytest.raises(ConfigurationError):
        create_client("faiss", tmp_path, {"index": "ivf"})


def test_importing_the_registry_imports_no_backend_library() -> None:
    code = (
        "import sys, vectorstores.registry, vectorstores.filters, vectorstores.memory; "
        "print(sorted(m for m in ('faiss', 'chromadb', 'psycopg') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
