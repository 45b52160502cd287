"""Fixtures of the ingestion tests: small limits, the hash embedder, a memory store."""

from __future__ import annotations

import pytest

from ingest.limits import LoadLimits
from ingest.pipeline import IngestPipeline
from tests.fakes import HashEmbedder
from vectorstores.memory import MemoryStore


@pytest.fixture
def limits() -> LoadLimits:
    return LoadLimits(
        max_file_bytes=2_000_000,
        max_pdf_pages=20,
        max_parse_seconds=60.0,
        max_decompressed_bytes=1_000_000,
    )


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def store(embedder: HashEmbedder) -> MemoryStore:
    return MemoryStore("test", embedder.model_name, embedder.dimension)


@pytest.fixture
def pipeline(embedder: HashEmbedder, limits: LoadLimits) -> IngestPipeline:
    return IngestPipeline(embedder, chunk_size=64, chunk_overlap=8, limits=limits)


@pytest.fixture(scope="session")
def real_embedder():  # type: ignore[no-untyped-def]
    """The bundled model in float32, the reference the other backends are compared with.

    (``auto`` may pick bfloat16, whose rows move by ~1e-3 with the batch they are padded in.)
    Queries stay on torch (``query_backend="same"``), so no test depends on when a background
    query export finishes; ``test_query_backend.py`` tests that path.
    """
    from ingest.embedders import create_embedder

    return create_embedder("all-MiniLM-L6-v2", backend="float32", query_backend="same")
