"""Fixtures of the retrieval tests: small collections of hand-written documents."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from core.types import Chunk, DocumentRecord
from ingest.chunking import document_id_for
from ingest.limits import LoadLimits
from ingest.pipeline import IngestPipeline
from tests.fakes import HashEmbedder
from vectorstores.base import VectorStore

DOCS = {
    "heapq.txt": "The heapq module implements the heap queue algorithm, also known as the "
    "priority queue algorithm. Use heappush and heappop to keep a list ordered as a heap.",
    "bisect.txt": "The bisect module maintains a sorted list without sorting it after each "
    "insertion, using a bisection algorithm such as bisect_left and insort.",
    "json.txt": "The json module encodes and decodes JSON documents. Use json.dumps to "
    "serialise an object and json.loads to parse a string.",
    "venv.txt": "The venv module creates lightweight virtual environments, each with its own "
    "site directory, isolated from the system site directories.",
}


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def pipeline(embedder: HashEmbedder) -> IngestPipeline:
    return IngestPipeline(embedder, chunk_size=64, chunk_overlap=8, limits=LoadLimits())


@pytest.fixture
def doc_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def add_document(
    store: VectorStore,
    embedder: HashEmbedder,
    source: str,
    texts: Sequence[str],
    metadata: dict[str, str | int] | None = None,
) -> list[Chunk]:
    """Store a document of one chunk per text (bypassing the loaders)."""
    document_id = document_id_for(source)
    chunks = [
        Chunk(
            id=f"{document_id}:{i:05d}",
            document_id=document_id,
            text=text,
            metadata={"source": source, "position": i, "heading_path": "", **(metadata or {})},
        )
        for i, text in enumerate(texts)
    ]
    record = DocumentRecord(
        id=document_id,
        source=source,
        content_hash=hashlib.sha256("\x00".join(texts).encode()).hexdigest(),
        chunk_count=len(chunks),
        metadata=dict(metadata or {}),
        created_at=time.time(),
        updated_at=time.time(),
    )
    store.replace_document(record, chunks, embedder.embed(texts))
    return chunks
