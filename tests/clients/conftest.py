"""One live ``ragserver serve`` (real MiniLM, real pages) shared by the client tests.

Each server process loads the embedding model, which is slow on a small machine, so the whole
package shares one, started on first use and stopped after the package's last test. The Python
docs pages of ``tests/data/html`` are in its collection ``pydocs``; tests that change data use
collections of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.live import LiveServer

HTML = Path(__file__).resolve().parents[1] / "data" / "html"
PAGES = sorted(HTML.glob("*.html"))
COLLECTION = "pydocs"
HEAP_QUESTION = "How do I push an item onto a heap while keeping the heap invariant?"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# float32 documents and queries on torch: no background ONNX export competing for the CPU,
# and the vectors the tests compare against the local model's.
LOCAL_EMBEDDING = {
    "RAG_EMBEDDING__BACKEND": "float32",
    "RAG_EMBEDDING__QUERY_BACKEND": "same",
}
QUIET = {"RAG_LLM__LOAD_AT_STARTUP": "false", "RAG_SERVER__LOG_LEVEL": "warning"}


@pytest.fixture(scope="package")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real ragserver with the bundled models; ``pydocs`` holds the five pages."""
    data = tmp_path_factory.mktemp("client-live") / "data"
    env = {**LOCAL_EMBEDDING, **QUIET, "RAG_LLM__MAX_NEW_TOKENS": "24"}
    server = LiveServer(data, env).start()
    try:
        create = httpx.post(f"{server.url}/v1/collections", json={"name": COLLECTION})
        assert create.status_code == 201, create.text
        files = [("files", (p.name, p.read_bytes())) for p in PAGES]
        upload = httpx.post(
            f"{server.url}/v1/collections/{COLLECTION}/documents", files=files, timeout=600
        )
        assert upload.status_code == 201, upload.text
        yield server
    finally:
        server.stop()
