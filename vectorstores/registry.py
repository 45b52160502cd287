"""Backend name to client factory; each factory imports its library only when called."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.errors import ConfigurationError
from vectorstores.base import VectorStoreClient

ClientFactory = Callable[[Path, Mapping[str, Any]], VectorStoreClient]


def _memory(data_dir: Path, options: Mapping[str, Any]) -> VectorStoreClient:
    from vectorstores.memory import MemoryClient

    return MemoryClient(data_dir, **options)


def _faiss(data_dir: Path, options: Mapping[str, Any]) -> VectorStoreClient:
    from vectorstores.faiss_client import FaissClient

    return FaissClient(data_dir, **options)


def _chroma(data_dir: Path, options: Mapping[str, Any]) -> VectorStoreClient:
    from vectorstores.chroma_store import ChromaClient

    return ChromaClient(data_dir, **options)


def _pgvector(data_dir: Path, options: Mapping[str, Any]) -> VectorStoreClient:
    from vectorstores.pgvector_store import PgVectorClient

    return PgVectorClient(data_dir, **options)


BACKENDS: dict[str, ClientFactory] = {
    "memory": _memory,
    "faiss": _faiss,
    "chroma": _chroma,
    "pgvector": _pgvector,
}


def create_client(
    backend: str, data_dir: Path, options: Mapping[str, Any] | None = None
) -> VectorStoreClient:
    """Build the client of a vector store backend.

    Args:
        backend: A key of ``BACKENDS``: ``"memory"``, ``"faiss"``, ``"chroma"`` or
            ``"pgvector"``.
        data_dir: The server's data directory; persistent backends keep their files in a
            sub-folder named after the backend.
        options: The backend's settings section, e.g.
            ``settings.vectorstore.faiss.model_dump()``.

    Returns:
        The client.

    Raises:
        ConfigurationError: ``backend`` is not a known backend name, or an option is invalid.
        BackendUnavailable: the backend's library or server cannot be reached.
    """
    factory = BACKENDS.get(backend)
    if factory is None:
        raise ConfigurationError(
            f"unknown vector store backend {backend!r}; known backends: "
            f"{', '.join(sorted(BACKENDS))}",
            {"backend": backend, "known": sorted(BACKENDS)},
        )
    return factory(Path(data_dir), dict(options or {}))
