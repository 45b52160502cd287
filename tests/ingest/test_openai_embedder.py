"""The openai embedding backend's failures (its working path runs against a live server in
tests/clients/test_openai_embeddings.py)."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigurationError, ProviderError
from ingest.embedders import create_embedder
from ingest.openai_embedder import OpenAIEmbedder
from tests.clients.stub import Reply, stub_server
from tests.integration.live import free_port


def embedding_reply(vectors: list[list[float]], model: str = "remote-model") -> Reply:
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    usage = {"prompt_tokens": 1, "total_tokens": 1}
    return Reply(200, {"object": "list", "data": data, "model": model, "usage": usage})


def test_start_up_says_which_server_failed() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(ConfigurationError) as failed:
        create_embedder("all-MiniLM-L6-v2", backend="openai", base_url=url, max_retries=0)
    message = failed.value.message
    assert url in message
    assert "RAG_EMBEDDING__OPENAI__BASE_URL" in message


def test_the_probe_sets_dimension_and_name_and_errors_become_provider_errors() -> None:
    problem = {"error": {"message": "model overloaded", "type": "server_error"}}
    replies = [
        embedding_reply([[3.0, 4.0]]),  # the probe: 2 dimensions
        embedding_reply([[0.0, 2.0], [1.0, 0.0]]),
        embedding_reply([[1.0, 2.0, 3.0]]),  # a vector of another dimension
        Reply(500, problem),
    ]
    with stub_server(replies) as stub:
        embedder = create_embedder("m", backend="openai", base_url=f"{stub.url}/v1", max_retries=0)
        assert isinstance(embedder, OpenAIEmbedder)
        assert (embedder.model_name, embedder.dimension) == ("remote-model", 2)
        assert embedder.cache_namespace == f"openai|{stub.url}/v1|remote-model"
        vectors = embedder.embed(["a", "b"])
        np.testing.assert_allclose(vectors, [[0.0, 1.0], [1.0, 0.0]])  # unit rows
        with pytest.raises(ProviderError) as wrong_shape:
            embedder.embed_query("c")
        assert "2 dimensions" in wrong_shape.value.message
        with pytest.raises(ProviderError) as server_error:
            embedder.embed(["d"])
        assert "answered 500" in server_error.value.message
    assert stub.seen[1].headers["authorization"] == "Bearer unused"
