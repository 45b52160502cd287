"""Queries on their own backend: an ONNX float32 export, made in the background, same vectors."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import ConfigurationError
from ingest.backends import resolve_query_backend

QUERIES = [
    "How do I sort a dictionary by its values?",
    "asyncio.gather",
    "what does the walrus operator do " * 60,  # longer than the model reads: truncated alike
]


def test_query_backend_resolution() -> None:
    assert resolve_query_backend("auto", "float32") == "onnx-float32"
    for documents in ("bfloat16", "onnx-int8", "onnx-float32"):
        assert resolve_query_backend("auto", documents) == "same"
    assert resolve_query_backend("auto", "float32", device="cuda") == "same"
    assert resolve_query_backend("same", "float32") == "same"
    assert resolve_query_backend("onnx-float32", "float32") == "onnx-float32"
    assert resolve_query_backend("onnx-float32", "onnx-float32") == "same"
    with pytest.raises(ValueError, match="needs documents embedded in float32"):
        resolve_query_backend("onnx-float32", "bfloat16")
    with pytest.raises(ValueError, match="auto, same, onnx-float32"):
        resolve_query_backend("int4", "float32")


def test_mismatched_query_backend_is_a_configuration_error() -> None:
    from ingest.embedders import create_embedder

    with pytest.raises(ConfigurationError, match="query backend onnx-float32 needs"):
        create_embedder("all-MiniLM-L6-v2", backend="bfloat16", query_backend="onnx-float32")


@pytest.mark.integration
def test_queries_switch_to_the_onnx_export_with_the_same_vectors(tmp_path: Path) -> None:
    from ingest.embedders import create_embedder

    embedder: Any = create_embedder("all-MiniLM-L6-v2", backend="float32", cache_dir=tmp_path)
    before = [embedder.embed_query(q) for q in QUERIES]  # torch, or already ONNX: same vectors
    assert embedder.query_ready.wait(300), "the query export did not finish"
    assert (embedder.backend, embedder.query_backend) == ("float32", "onnx-float32")
    exported = sorted(p.name for p in (tmp_path / "onnx").glob("*.onnx"))
    assert len(exported) == 1, exported
    assert exported[0].endswith(".float32.onnx"), exported
    assert not list((tmp_path / "onnx").glob(".export-*"))
    after = np.stack([embedder.embed_query(q) for q in QUERIES])
    documents = embedder.embed(QUERIES)  # torch float32, the vectors stored for documents
    np.testing.assert_allclose(after, np.stack(before), atol=1e-5)
    np.testing.assert_allclose(after, documents, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, rtol=1e-5)
    # A lone query may use every CPU; idle pool threads sleep instead of spinning.
    options = embedder._onnx_query._session.get_session_options()
    assert options.intra_op_num_threads == len(os.sched_getaffinity(0))
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"

    # Concurrent queries run side by side (no batching on ONNX) and never wait for the lock
    # document batches hold: a query finishes while a document batch would be running.
    many = [f"question number {i} about {q}" for i, q in enumerate(QUERIES * 4)]
    with ThreadPoolExecutor(8) as pool:
        got = np.stack(list(pool.map(embedder.embed_query, many)))
    np.testing.assert_allclose(got, embedder.embed(many), atol=1e-5)
    with embedder._lock, ThreadPoolExecutor(1) as pool:
        np.testing.assert_allclose(
            pool.submit(embedder.embed_query, QUERIES[1]).result(timeout=60), after[1], atol=1e-6
        )

    mtime = (tmp_path / "onnx" / exported[0]).stat().st_mtime_ns
    again: Any = create_embedder("all-MiniLM-L6-v2", backend="float32", cache_dir=tmp_path)
    assert again.query_ready.wait(300)
    assert again.query_backend == "onnx-float32"
    assert (tmp_path / "onnx" / exported[0]).stat().st_mtime_ns == mtime  # reused, not redone
    np.testing.assert_allclose(again.embed_query(QUERIES[0]), after[0], atol=1e-6)


@pytest.mark.integration
def test_a_failed_query_export_leaves_queries_on_torch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ingest.embedders import create_embedder

    blocked = tmp_path / "cache"
    blocked.write_text("a file where the export folder would go")
    with caplog.at_level(logging.WARNING, logger="ingest.embedders"):
        embedder: Any = create_embedder("all-MiniLM-L6-v2", backend="float32", cache_dir=blocked)
        assert embedder.query_ready.wait(300)
    assert embedder.query_backend == "float32"
    assert "queries stay on the float32 backend" in caplog.text
    vector = embedder.embed_query(QUERIES[0])
    np.testing.assert_allclose(vector, embedder.embed(QUERIES[:1])[0], atol=1e-5)


@pytest.mark.integration
def test_same_keeps_queries_on_the_documents_backend(tmp_path: Path) -> None:
    from ingest.embedders import create_embedder

    embedder: Any = create_embedder(
        "all-MiniLM-L6-v2", backend="float32", query_backend="same", cache_dir=tmp_path
    )
    assert embedder.query_ready.is_set()
    assert embedder.query_backend == "float32"
    assert not (tmp_path / "onnx").exists()
