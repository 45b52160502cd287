"""Backends, the embedding cache, chunking-aware versions and the overlapped batch pipeline."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from core.errors import EmbeddingMismatch
from core.types import embedding_text
from ingest.backends import cpu_flags, native_bf16, resolve_backend
from ingest.embedding_cache import EmbeddingCache
from ingest.limits import LoadLimits
from ingest.pipeline import IngestPipeline
from tests.fakes import HashEmbedder
from tests.ingest.files import HTML_DIR
from vectorstores.memory import MemoryStore

SECTION = "Paragraph {n} talks about kites and {word} in plain words, nothing more to say."


class SpyEmbedder(HashEmbedder):
    """A hash embedder that records what it embeds, optionally failing."""

    def __init__(self, poison: str | None = None) -> None:
        super().__init__()
        self.poison = poison
        self.texts: list[str] = []
        self.busy: list[tuple[float, float]] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if self.poison is not None and any(self.poison in t for t in texts):
            raise RuntimeError("the model choked")
        started = time.monotonic()
        self.texts.extend(texts)
        out = super().embed(texts)
        self.busy.append((started, time.monotonic()))
        return out


def markdown(words: Sequence[str]) -> str:
    sections = [f"## Part {n}\n\n{SECTION.format(n=n, word=w)}" for n, w in enumerate(words)]
    return "# Guide\n\n" + "\n\n".join(sections) + "\n"


def pipeline_for(embedder: Any, limits: LoadLimits, **options: Any) -> IngestPipeline:
    return IngestPipeline(embedder, chunk_size=64, chunk_overlap=8, limits=limits, **options)


# --- backends ---------------------------------------------------------------------------------


def test_auto_backend_follows_cpu_capabilities(tmp_path: Path) -> None:
    assert resolve_backend("auto", flags=frozenset({"avx2", "fma"})) == "float32"
    assert resolve_backend("auto", device="cuda", flags=frozenset({"amx_bf16"})) == "float32"
    expected = "bfloat16" if native_bf16(frozenset({"amx_bf16"})) else "float32"
    assert resolve_backend("auto", flags=frozenset({"amx_bf16"})) == expected
    for explicit in ("float32", "bfloat16", "onnx-float32", "onnx-int8"):
        assert resolve_backend(explicit, flags=frozenset()) == explicit
    with pytest.raises(ValueError, match="onnx-int8"):
        resolve_backend("float16")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16\n\n")
    assert cpu_flags(cpuinfo) >= {"avx512f", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.fixture(scope="module")
def real_texts(real_embedder: Any) -> list[str]:
    from ingest.chunking import chunk_document, document_id_for
    from ingest.loaders import load_file

    texts: list[str] = []
    for path in sorted(HTML_DIR.glob("*.html")):
        document = load_file(path, path.name, LoadLimits())
        chunks = chunk_document(
            document,
            document_id_for(path.name),
            real_embedder.chunk_tokenizer,
            chunk_size=200,
            chunk_overlap=30,
        )
        texts += [embedding_text(c) for c in chunks[:8]]
    return texts


def _cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.asarray((a * b).sum(axis=1), dtype=np.float32)


@pytest.mark.integration
def test_bfloat16_vectors_match_float32(real_embedder: Any, real_texts: list[str]) -> None:
    from ingest.embedders import create_embedder

    bf16 = create_embedder("all-MiniLM-L6-v2", backend="bfloat16")
    assert (bf16.backend, bf16.cache_namespace) == (  # type: ignore[attr-defined]
        "bfloat16",
        "sentence-transformers/all-MiniLM-L6-v2|bfloat16",
    )
    cosines = _cosines(bf16.embed(real_texts), real_embedder.embed(real_texts))
    assert cosines.min() >= 0.99, cosines.min()
    np.testing.assert_allclose(np.linalg.norm(bf16.embed(real_texts[:3]), axis=1), 1.0, rtol=1e-5)


@pytest.mark.integration
def test_onnx_int8_export_is_cached_and_close_to_float32(
    tmp_path: Path, real_embedder: Any, real_texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest import onnx_export
    from ingest.embedders import create_embedder

    int8 = create_embedder("all-MiniLM-L6-v2", backend="onnx-int8", cache_dir=tmp_path)
    assert int8.backend == "onnx-int8"  # type: ignore[attr-defined]
    files = list((tmp_path / "onnx").iterdir())
    exported = [f for f in files if f.name.endswith(".int8.onnx")]
    assert len(exported) == 1
    assert not [f for f in files if f.name.startswith(".export-")]  # no temp left behind
    cosines = _cosines(int8.embed(real_texts), real_embedder.embed(real_texts))
    # onnxruntime's int8 kernels differ by CPU: the worst chunk measured 0.985 (AMX) and
    # 0.989 (AVX2 without VNNI) on real text; the mean stays above 0.99 on both.
    assert cosines.min() >= 0.98, cosines.min()
    assert cosines.mean() >= 0.99, cosines.mean()
    query = int8.embed_query(real_texts[0])
    assert query.shape == (384,)
    assert float(query @ real_embedder.embed_query(real_texts[0])) >= 0.99

    def no_second_export(*args: Any) -> None:
        raise AssertionError("the cached export must be reused")

    monkeypatch.setattr(onnx_export, "_export", no_second_export)
    monkeypatch.setattr(onnx_export, "_quantise", no_second_export)
    again = create_embedder("all-MiniLM-L6-v2", backend="onnx-int8", cache_dir=tmp_path)
    np.testing.assert_allclose(again.embed(real_texts[:2]), int8.embed(real_texts[:2]), atol=1e-6)
    # The float32 export the int8 one was quantised from is kept: onnx-float32 reuses it, and
    # its vectors are torch's float32 ones.
    float32 = create_embedder("all-MiniLM-L6-v2", backend="onnx-float32", cache_dir=tmp_path)
    assert (float32.backend, float32.query_backend) == ("onnx-float32", "onnx-float32")  # type: ignore[attr-defined]
    assert float32.query_ready.is_set()  # type: ignore[attr-defined]
    cosines = _cosines(float32.embed(real_texts), real_embedder.embed(real_texts))
    assert cosines.min() >= 0.99999, cosines.min()


# --- embedding cache ---------------------------------------------------------------------------


def test_changed_document_reembeds_only_changed_chunks(tmp_path: Path, limits: LoadLimits) -> None:
    embedder = SpyEmbedder()
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    store = MemoryStore("c", embedder.model_name, embedder.dimension)
    pipeline = pipeline_for(embedder, limits, cache=cache)
    words = ["wind", "string", "tails", "spools", "colours", "knots"]
    path = tmp_path / "guide.md"
    path.write_text(markdown(words))
    assert pipeline.ingest_file(store, path).status == "created"
    assert len(embedder.texts) == 6
    embedder.texts.clear()
    words[2] = "ribbons"
    path.write_text(markdown(words))
    result = pipeline.ingest_file(store, path)
    assert (result.status, result.chunk_count) == ("replaced", 6)
    assert len(embedder.texts) == 1
    assert "ribbons" in embedder.texts[0]
    stored = store.get_chunks(result.document_id)
    expected = HashEmbedder().embed([embedding_text(c) for c in stored])
    hits = store.search(expected[2], top_k=1)
    assert hits[0].chunk.id == stored[2].id
    assert hits[0].score == pytest.approx(1.0)
    cache.close()

    # The cache is persistent: a new pipeline (a restart) embeds nothing for the same chunks.
    embedder.texts.clear()
    reopened = EmbeddingCache(tmp_path / "cache.sqlite3")
    assert len(reopened) == 7
    other = MemoryStore("d", embedder.model_name, embedder.dimension)
    assert pipeline_for(embedder, limits, cache=reopened).ingest_file(other, path).status == (
        "created"
    )
    assert embedder.texts == []
    assert reopened.hits == 6


def test_cache_separates_models_and_backends_and_stays_bounded(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache.sqlite3", max_bytes=10 * (4 * 4 + 100))
    vectors = np.eye(4, dtype=np.float32)
    cache.put_many("m|float32", ["a", "b"], vectors[:2])
    assert set(cache.get_many("m|float32", ["a", "b", "c", "a"], 4)) == {0, 1, 3}
    assert cache.get_many("m|bfloat16", ["a"], 4) == {}
    assert cache.get_many("m|float32", ["a"], 8) == {}  # another dimension is a miss
    texts = [f"text {i}" for i in range(30)]
    cache.put_many("m|float32", texts, np.tile(vectors[:1], (30, 1)))
    assert len(cache) <= 10
    cache.close()


def test_unreadable_cache_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    cache = EmbeddingCache(path)
    cache.put_many("ns", ["x"], np.ones((1, 3), dtype=np.float32))
    assert list(cache.get_many("ns", ["x"], 3)) == [0]
    assert list(tmp_path.glob("cache.sqlite3.corrupt-*"))
    cache.close()


# --- chunking parameters are part of the version -----------------------------------------------


def test_same_bytes_with_other_chunking_are_rechunked(
    tmp_path: Path, store: MemoryStore, limits: LoadLimits
) -> None:
    embedder = SpyEmbedder()
    pipeline = pipeline_for(embedder, limits)
    path = tmp_path / "long.md"
    path.write_text("# Title\n\n" + " ".join(f"word{i}" for i in range(400)))
    first = pipeline.ingest_file(store, path)
    assert pipeline.ingest_file(store, path).status == "unchanged"
    assert pipeline.ingest_file(store, path, chunk_size=64, chunk_overlap=8).status == "unchanged"
    smaller = pipeline.ingest_file(store, path, chunk_size=32)
    assert smaller.status == "replaced"
    assert smaller.chunk_count > first.chunk_count
    assert store.count() == smaller.chunk_count
    overlap = pipeline.ingest_file(store, path, chunk_size=32, chunk_overlap=0)
    assert overlap.status == "replaced"
    assert overlap.chunk_count < smaller.chunk_count
    assert pipeline.ingest_file(store, path, chunk_size=32, chunk_overlap=0).status == ("unchanged")


# --- the overlapped batch pipeline -------------------------------------------------------------


def write_files(root: Path, count: int) -> list[tuple[Path, str]]:
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        path = root / f"doc{i:02d}.md"
        path.write_text(markdown([f"topic{i}x{j}" for j in range(3)]))
        files.append((path, path.name))
    return files


def test_ingest_many_keeps_order_and_failed_file_semantics(
    tmp_path: Path, limits: LoadLimits
) -> None:
    embedder = SpyEmbedder(poison="topic3x1")
    store = MemoryStore("c", embedder.model_name, embedder.dimension)
    files = write_files(tmp_path / "docs", 8)
    (tmp_path / "docs" / "empty.md").write_text("   \n")
    files.insert(5, (tmp_path / "docs" / "empty.md", "empty.md"))
    files.append((tmp_path / "docs" / "missing.md", "missing.md"))
    seen: list[str] = []
    chunks: list[int] = []
    pipeline = pipeline_for(embedder, limits, group_chunks=10, prefetch=3)
    results = pipeline.ingest_many(
        store, files, progress=chunks.append, on_file_done=lambda r: seen.append(r.source)
    )
    assert [r.source for r in results] == [source for _, source in files]
    assert sorted(seen) == sorted(source for _, source in files)
    status = {r.source: r.status for r in results}
    assert status.pop("doc03.md") == "failed"  # its embedding failed: nothing stored
    assert status.pop("empty.md") == "failed"
    assert status.pop("missing.md") == "failed"
    assert set(status.values()) == {"created"}
    assert {r.source for r in store.list_documents()} == set(status)
    assert store.count() == sum(chunks) == 7 * 3
    # Chunks of several files share an embedding call.
    assert len(embedder.busy) < len(status)


class ParseWaitingEmbedder(SpyEmbedder):
    """Its second batch lasts until a file has been parsed meanwhile (10 s at most)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.waiting = threading.Event()
        self.parsed_meanwhile = threading.Event()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        if self.calls == 2:
            self.waiting.set()
            self.parsed_meanwhile.wait(10)
            self.waiting.clear()
        return super().embed(texts)


def test_ingest_paths_overlaps_parsing_with_embedding(tmp_path: Path, limits: LoadLimits) -> None:
    embedder = ParseWaitingEmbedder()
    store = MemoryStore("c", embedder.model_name, embedder.dimension)
    write_files(tmp_path / "docs", 12)
    pipeline = pipeline_for(embedder, limits, group_chunks=3, prefetch=4)
    parsed: list[str] = []
    started = 0
    lock = threading.Lock()
    original = pipeline.prepare_file

    def spying(*args: Any, **kwargs: Any) -> Any:
        nonlocal started
        with lock:
            started += 1
            later = started > 2
        if later and not embedder.parsed_meanwhile.is_set():
            # Until one is parsed during the second batch's embedding, files after the first
            # two wait for that batch to begin (10 s at most), so the check below does not
            # depend on how threads happen to be scheduled.
            embedder.waiting.wait(10)
        result = original(*args, **kwargs)
        parsed.append(threading.current_thread().name)
        if embedder.waiting.is_set():
            embedder.parsed_meanwhile.set()
        return result

    pipeline.prepare_file = spying  # type: ignore[method-assign]
    summary = pipeline.ingest_paths(store, [tmp_path / "docs"], progress_bar=False)
    assert (summary.created, summary.chunks) == (12, 36)
    assert all(name.startswith("ingest-parse") for name in parsed)
    # A pipeline that parsed only between batches would leave the second one waiting 10 s.
    assert embedder.parsed_meanwhile.is_set(), "no file was parsed while a batch was embedded"
    pipeline.prepare_file = original  # type: ignore[method-assign]
    again = pipeline.ingest_paths(store, [tmp_path / "docs"], progress_bar=False)
    assert (again.unchanged, again.chunks) == (12, 0)


def test_same_source_twice_in_a_batch_is_stored_in_order(
    tmp_path: Path, store: MemoryStore, limits: LoadLimits
) -> None:
    embedder = SpyEmbedder()
    pipeline = pipeline_for(embedder, limits)
    first, second = tmp_path / "a.md", tmp_path / "b.md"
    first.write_text(markdown(["one"]))
    second.write_text(markdown(["two", "three"]))
    results = pipeline.ingest_many(store, [(first, "same.md"), (second, "same.md")])
    assert [r.status for r in results] == ["created", "replaced"]
    assert store.count() == 2
    assert store.count_documents() == 1


def test_ingest_many_checks_the_store_first(tmp_path: Path, limits: LoadLimits) -> None:
    pipeline = pipeline_for(SpyEmbedder(), limits)
    with pytest.raises(EmbeddingMismatch):
        pipeline.ingest_many(MemoryStore("x", "other", 64), write_files(tmp_path, 1))


def test_search_route_runs_off_the_event_loop() -> None:
    from app.routers.search import search

    # A plain ``def`` route: FastAPI runs it, embedding and FAISS search, in its threadpool.
    assert not inspect.iscoroutinefunction(search)


@pytest.mark.integration
def test_concurrent_queries_share_forward_passes(
    real_embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    queries = [f"how do I fly kite number {i}?" for i in range(12)]
    expected = real_embedder.embed(queries)
    forward = real_embedder._forward
    batches: list[int] = []

    def slow_forward(texts: list[str], query: bool = False) -> Any:
        assert query
        batches.append(len(texts))
        time.sleep(0.05)
        return forward(texts, query=query)

    monkeypatch.setattr(real_embedder, "_forward", slow_forward)
    with ThreadPoolExecutor(6) as pool:
        got = np.stack(list(pool.map(real_embedder.embed_query, queries)))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert sum(batches) == len(queries)
    assert len(batches) < len(queries)  # queries that arrived during a pass went together
