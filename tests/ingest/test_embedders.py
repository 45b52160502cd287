from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.errors import ConfigurationError
from ingest.base import Embedder
from ingest.embedders import EMBEDDERS, bundled_model_path, create_embedder
from tests.fakes import HashEmbedder


def test_bundled_model_files_are_found() -> None:
    path = bundled_model_path()
    assert path.name == "model"
    assert (path / "modules.json").is_file()
    assert "all-MiniLM-L6-v2" in EMBEDDERS
    assert "sentence-transformers/all-MiniLM-L6-v2" in EMBEDDERS


def test_unknown_model_is_a_configuration_error(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot be loaded offline.*all-MiniLM-L6-v2"):
        create_embedder(str(tmp_path / "no-such-model"))


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="onnx-int8"):
        create_embedder("all-MiniLM-L6-v2", backend="float16")


def test_hash_embedder_is_a_deterministic_embedder() -> None:
    embedder = HashEmbedder()
    assert isinstance(embedder, Embedder)
    vectors = embedder.embed(["red kite", "red kite", "blue spool", ""])
    assert vectors.shape == (4, 64)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(vectors[0], vectors[1])
    np.testing.assert_array_equal(embedder.embed_query("red kite"), vectors[0])
    assert embedder.count_tokens("red kite flies") == 5
    assert HashEmbedder(dimension=16).embed(["x"]).shape == (1, 16)


@pytest.mark.integration
def test_real_embedder_shape_norm_and_protocol(real_embedder: Any) -> None:
    assert isinstance(real_embedder, Embedder)
    assert real_embedder.model_name == "sentence-transformers/all-MiniLM-L6-v2"
    assert real_embedder.dimension == 384
    assert real_embedder.max_seq_length == 256
    vectors = real_embedder.embed(["How do I parse JSON?", "heap queue", "x" * 10])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    query = real_embedder.embed_query("How do I parse JSON?")
    assert query.shape == (384,)
    np.testing.assert_allclose(query, vectors[0], atol=1e-5)
    assert real_embedder.embed([]).shape == (0, 384)


@pytest.mark.integration
def test_real_embedder_batching_matches_one_by_one(real_embedder: Any) -> None:
    texts = [("kites fly in the wind " * (1 + i % 7)).strip() for i in range(16)]
    batched = real_embedder.embed(texts)
    single = np.stack([real_embedder.embed([t])[0] for t in texts[:3]])
    np.testing.assert_allclose(batched[:3], single, atol=1e-5)
    similar = batched @ batched.T
    assert similar[0, 7] > 0.99  # identical texts, different positions in the batch


@pytest.mark.integration
def test_real_embedder_counts_tokens_with_specials(real_embedder: Any) -> None:
    text = "The json module encodes Python objects."
    expected = len(real_embedder.tokenizer(text)["input_ids"])
    assert real_embedder.count_tokens(text) == expected
    assert real_embedder.count_tokens("") == 2
    long = "word " * 1000
    assert real_embedder.count_tokens(long) == 1002  # never truncated when counting


@pytest.mark.integration
def test_real_embedder_is_thread_safe(real_embedder: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"kite number {i} " * (1 + i % 5) for i in range(8)]
    expected = real_embedder.embed(texts)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(real_embedder.embed_query, texts))
    np.testing.assert_allclose(np.stack(results), expected, atol=1e-5)


@pytest.mark.integration
def test_embedding_is_semantic(real_embedder: Any) -> None:
    docs = real_embedder.embed(["Serialize objects to JSON strings.", "Bake bread with yeast."])
    query = real_embedder.embed_query("how to convert a dict to json")
    assert float(docs[0] @ query) > float(docs[1] @ query) + 0.2


@pytest.mark.integration
def test_batch_tokens_default_and_split_batches_match(
    real_embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.embedders import CPU_BATCH_TOKENS

    assert real_embedder.batch_tokens == CPU_BATCH_TOKENS  # None on the CPU: the CPU default
    texts = [("the kite string knots around the spool " * (12 + i % 5)).strip() for i in range(24)]
    passes: list[int] = []
    forward = real_embedder._forward

    def counted(batch: list[str], query: bool = False) -> Any:
        passes.append(len(batch))
        return forward(batch, query)

    monkeypatch.setattr(real_embedder, "_forward", counted)
    small = real_embedder.embed(texts)
    assert len(passes) > 1  # several forward passes
    assert sum(passes) == len(texts)
    monkeypatch.setattr(real_embedder, "batch_tokens", 16384)
    passes.clear()
    large = real_embedder.embed(texts)
    assert passes == [len(texts)]  # one pass
    np.testing.assert_allclose(small, large, atol=1e-5)


def test_empty_optional_settings_mean_their_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.settings import Settings

    monkeypatch.setenv("RAG_EMBEDDING__BATCH_TOKENS", "")
    monkeypatch.setenv("RAG_LLM__CONTEXT_WINDOW", " ")
    settings = Settings()
    assert settings.embedding.batch_tokens is None
    assert settings.llm.context_window is None
    monkeypatch.setenv("RAG_EMBEDDING__BATCH_TOKENS", "4096")
    assert Settings().embedding.batch_tokens == 4096
    monkeypatch.setenv("RAG_EMBEDDING__BATCH_TOKENS", "0")
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        Settings()


def mkl_max_threads() -> Any:
    """MKL's ``mkl_get_max_threads`` inside torch, or None when this torch has no MKL."""
    import ctypes
    from pathlib import Path

    import torch

    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        return lib.mkl_get_max_threads
    except (OSError, AttributeError):
        return None


@pytest.mark.integration
def test_a_torch_query_runs_on_one_thread_after_a_faiss_search(
    real_embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAISS and torch share libgomp: a FAISS search leaves this thread's OpenMP count at 1,
    which torch then reports, while MKL keeps its own count; the query must still set MKL to
    one thread (it once read 1, skipped that, and ran on every core at twice the CPU)."""
    import faiss

    mkl_threads = mkl_max_threads()
    if mkl_threads is None:
        pytest.skip("this torch has no MKL, whose thread count this test reads")
    monkeypatch.setattr(real_embedder._encoder, "threads", 2)
    seen: list[int] = []
    encode = real_embedder._model.encode

    def spying(*args: Any, **kwargs: Any) -> Any:
        seen.append(mkl_threads())
        return encode(*args, **kwargs)

    monkeypatch.setattr(real_embedder._model, "encode", spying)

    def in_a_request_thread() -> int:
        real_embedder.embed_query("a first query: torch gives MKL a count of its own")
        faiss.omp_set_num_threads(1)  # as FaissStore.search does in the thread it runs in
        real_embedder.embed_query("how do I read a file line by line")
        return int(mkl_threads())

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        after = pool.submit(in_a_request_thread).result()
    assert seen == [1, 1]
    assert after == 2  # restored for document batches
