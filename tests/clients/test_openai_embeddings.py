"""OpenAI-compatible embeddings both ways, with real parts.

``/v1/embeddings`` of the shared live server through the real ``openai`` client; then a second
ragserver with the ``openai`` embedding backend pointed at it ingests and searches the same
pages, and the vectors it stored are compared with the local model's. (These tests live beside
the client tests to share their server: every server process loads the model.)
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import openai
import pytest
from ragserver_client import Client

from ingest.base import Embedder
from ingest.embedders import create_embedder
from ingest.embedding_cache import EmbeddingCache
from tests.clients.conftest import COLLECTION, HEAP_QUESTION, MODEL, PAGES, QUIET
from tests.integration.live import LiveServer

pytestmark = pytest.mark.integration

TEXTS = [
    "How do I push an item onto a heap?",
    "json.dumps serializes an object to a JSON formatted str.",
    "bisect_left finds the insertion point for x in a sorted list.",
]


@pytest.fixture(scope="module")
def local() -> Embedder:
    """The bundled model in this process, in float32 (the live server's backend)."""
    return create_embedder("all-MiniLM-L6-v2", backend="float32", query_backend="same")


@pytest.fixture(scope="module")
def remote_server(
    live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A ragserver embedding through the shared server's /v1/embeddings; pydocs ingested."""
    data = tmp_path_factory.mktemp("remote-embedding") / "data"
    env = {
        **QUIET,
        "RAG_EMBEDDING__BACKEND": "openai",
        "RAG_EMBEDDING__MODEL": "all-MiniLM-L6-v2",
        "RAG_EMBEDDING__OPENAI__BASE_URL": f"{live_server.url}/v1",
        "RAG_EMBEDDING__OPENAI__API_KEY": "not-needed",
        "RAG_EMBEDDING__OPENAI__BATCH_SIZE": "16",
        "RAG_EMBEDDING__OPENAI__CONCURRENT_REQUESTS": "2",
        "RAG_EMBEDDING__OPENAI__MAX_INPUT_TOKENS": "256",
    }
    server = LiveServer(data, env).start()
    try:
        with Client(server.url) as rag:
            rag.create_collection(COLLECTION)
            result = rag.upload(COLLECTION, PAGES)
            assert [f.status for f in result.files] == ["created"] * len(PAGES), result
        yield server
    finally:
        server.stop()


def cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.asarray((a * b).sum(axis=1), dtype=np.float32)


def test_the_openai_client_embeds_like_the_local_model(
    live_server: LiveServer, local: Embedder
) -> None:
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", timeout=120)
    expected = local.embed(TEXTS)
    for encoding in ("float", "base64"):
        reply = client.embeddings.create(
            model="all-MiniLM-L6-v2", input=TEXTS, encoding_format=encoding
        )
        assert reply.model == MODEL
        assert [item.index for item in reply.data] == [0, 1, 2]
        if encoding == "base64":  # asked for explicitly, the client hands the text over as is
            rows = [np.frombuffer(base64.b64decode(str(i.embedding)), "<f4") for i in reply.data]
        else:
            rows = [np.array(item.embedding, dtype=np.float32) for item in reply.data]
        got = np.stack(rows)
        assert got.shape == (3, 384)
        assert cosines(got, expected).min() >= 0.9999, encoding
        tokens = sum(local.count_tokens(t) for t in TEXTS)
        assert reply.usage.prompt_tokens == reply.usage.total_tokens == tokens
    single = client.embeddings.create(model=MODEL, input=TEXTS[0])  # the client's default format
    assert cosines(np.array([single.data[0].embedding]), expected[:1]).min() >= 0.9999


def test_the_openai_client_gets_clear_refusals(live_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError) as token_ids:
        client.embeddings.create(model=MODEL, input=[[101, 7592, 102]])
    assert "token ids" in str(token_ids.value)
    with pytest.raises(openai.UnprocessableEntityError) as other_model:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert f"send model '{MODEL}'" in str(other_model.value)


def embedded_texts(rag: Client) -> list[str]:
    """What the server embedded for each chunk of the collection: heading path, newline, text."""
    texts = []
    for document in rag.list_documents(COLLECTION).documents:
        for chunk in rag.get_chunks(COLLECTION, document.id):
            texts.append(
                f"{chunk.heading_path}\n{chunk.text}" if chunk.heading_path else chunk.text
            )
    return texts


def test_a_server_with_the_openai_backend_ingests_and_searches(
    remote_server: LiveServer, live_server: LiveServer, local: Embedder, tmp_path: Path
) -> None:
    with Client(remote_server.url) as remote, Client(live_server.url) as origin:
        info = remote.get_collection(COLLECTION)
        assert (info.embedding_model, info.dimension) == (MODEL, 384)
        assert info.chunks == origin.get_collection(COLLECTION).chunks
        remote_hits = remote.search(COLLECTION, HEAP_QUESTION, top_k=5, mode="dense").hits
        origin_hits = origin.search(COLLECTION, HEAP_QUESTION, top_k=5, mode="dense").hits
        assert remote_hits[0].filename == "heapq.html"
        assert [h.chunk_id for h in remote_hits] == [h.chunk_id for h in origin_hits]
        for mine, theirs in zip(remote_hits, origin_hits, strict=True):
            assert mine.score == pytest.approx(theirs.score, abs=1e-4)
        hybrid = remote.search(COLLECTION, HEAP_QUESTION, top_k=3)
        assert hybrid.hits[0].filename == "heapq.html"
        texts = embedded_texts(remote)
    # The vectors the remote-embedding server stored, from its embedding cache.
    cache = EmbeddingCache(remote_server.data_dir / "cache" / "embeddings.sqlite3")
    namespace = f"openai|{live_server.url}/v1|{MODEL}"
    stored = cache.get_many(namespace, texts, 384)
    assert len(stored) == len(texts) == info.chunks
    vectors = np.stack([stored[i] for i in range(len(texts))])
    assert cosines(vectors, local.embed(texts)).min() >= 0.9999
