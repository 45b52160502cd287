from __future__ import annotations

import io
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from core.errors import ConfigurationError, EmbeddingMismatch, InvalidRequest
from core.types import embedding_text
from ingest.chunking import document_id_for
from ingest.cli import run_ingest
from ingest.limits import LoadLimits
from ingest.pipeline import IngestPipeline, collect_files
from tests.fakes import HashEmbedder
from tests.ingest.files import HTML_DIR, LOREM, encrypt_pdf, make_docx, make_pdf
from vectorstores.memory import MemoryStore


class CountingEmbedder:
    """Wraps an embedder and counts the texts it is asked to embed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.max_seq_length = inner.max_seq_length
        self.chunk_tokenizer = inner.chunk_tokenizer
        self.cache_namespace = inner.cache_namespace
        self.backend_info = inner.backend_info
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.texts.extend(texts)
        result: npt.NDArray[np.float32] = self.inner.embed(texts)
        return result

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        result: npt.NDArray[np.float32] = self.inner.embed_query(text)
        return result

    def count_tokens(self, text: str) -> int:
        return int(self.inner.count_tokens(text))


def set_of(store: MemoryStore) -> list[Any]:
    unique = {embedding_text(c): c for c in store.all_chunks()}
    return list(unique.values())


def make_corpus(root: Path) -> Path:
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / ".hidden").mkdir()
    (root / "docs" / "notes.md").write_text("# Notes\n\nKites need wind.\n\n## More\n\nSpools.")
    (root / "docs" / "sub" / "manual.docx").write_bytes(make_docx())
    (root / "docs" / "sub" / "heaps.pdf").write_bytes(make_pdf([LOREM, LOREM * 2]))
    (root / "docs" / "data.csv").write_text("name,colour\nkite,red\n")
    (root / "docs" / "style.css").write_text("p { color: red }")
    (root / "docs" / ".hidden" / "secret.txt").write_text("hidden")
    shutil.copy(HTML_DIR / "heapq.html", root / "docs" / "sub" / "heapq.html")
    return root / "docs"


def test_collect_files_walks_folders_with_globs(tmp_path: Path) -> None:
    docs = make_corpus(tmp_path)
    files, skipped = collect_files([docs])
    assert [source for _, source in files] == [
        "data.csv",
        "notes.md",
        "sub/heapq.html",
        "sub/heaps.pdf",
        "sub/manual.docx",
    ]
    assert skipped == 1  # style.css; the hidden folder is not even entered
    files, skipped = collect_files([docs], include=["*.md", "sub/*"], exclude=["*.pdf"])
    assert [source for _, source in files] == ["notes.md", "sub/heapq.html", "sub/manual.docx"]
    assert skipped == 3
    files, _ = collect_files([docs / "notes.md"])
    assert files == [(docs / "notes.md", "notes.md")]


def test_ingest_batch_then_reingest_is_unchanged_and_embeds_nothing(
    tmp_path: Path, store: MemoryStore, limits: LoadLimits
) -> None:
    docs = make_corpus(tmp_path)
    embedder = CountingEmbedder(HashEmbedder())
    pipeline = IngestPipeline(embedder, chunk_size=64, chunk_overlap=8, limits=limits)
    first = pipeline.ingest_paths(store, [docs], progress_bar=False)
    assert (first.files, first.created, first.failed) == (5, 5, [])
    assert first.chunks == store.count() > 10
    # Every distinct text is embedded once (identical chunks share one forward pass).
    assert sorted(set(embedder.texts)) == sorted(embedding_text(c) for c in set_of(store))
    assert first.chunks_per_second > 0
    assert store.count_documents() == 5
    embedder.texts.clear()
    second = pipeline.ingest_paths(store, [docs], progress_bar=False)
    assert [r.status for r in second.results] == ["unchanged"] * 5
    assert (second.unchanged, second.chunks, second.created) == (5, 0, 0)
    assert embedder.texts == []
    assert store.count() == first.chunks
    assert [r.chunk_count for r in second.results] == [r.chunk_count for r in first.results]


def test_changed_file_replaces_old_chunks(
    tmp_path: Path, store: MemoryStore, pipeline: IngestPipeline
) -> None:
    path = tmp_path / "kb.md"
    path.write_text("# KB\n\nThe old secret word is aardvark. " * 30)
    created = pipeline.ingest_file(store, path)
    assert created.status == "created"
    record = store.get_document(created.document_id)
    assert record is not None
    path.write_text("# KB\n\nThe new text mentions zebras only.")
    replaced = pipeline.ingest_file(store, path)
    assert (replaced.status, replaced.chunk_count) == ("replaced", 1)
    chunks = store.get_chunks(created.document_id)
    assert [c.text for c in chunks] == ["The new text mentions zebras only."]
    assert all("aardvark" not in c.text for c in store.all_chunks())
    new_record = store.get_document(created.document_id)
    assert new_record is not None
    assert new_record.created_at == record.created_at
    assert new_record.content_hash != record.content_hash
    assert new_record.chunk_count == 1


def test_failed_file_stores_nothing_and_batch_goes_on(
    tmp_path: Path, store: MemoryStore, pipeline: IngestPipeline
) -> None:
    good = tmp_path / "good.txt"
    good.write_text("Kites are fun.")
    enc = tmp_path / "enc.pdf"
    enc.write_bytes(encrypt_pdf(make_pdf(["secret"]), user_password="pw"))
    junk = tmp_path / "junk.txt"
    junk.write_bytes(bytes(range(256)))
    empty = tmp_path / "empty.md"
    empty.write_text("")
    missing = tmp_path / "missing.txt"
    summary = pipeline.ingest_paths(store, [enc, good, junk, empty, missing], progress_bar=False)
    statuses = {r.source: (r.status, r.error_type) for r in summary.results}
    assert statuses == {
        "enc.pdf": ("failed", "UnreadableDocument"),
        "good.txt": ("created", None),
        "junk.txt": ("failed", "UnsupportedFileType"),
        "empty.md": ("failed", "EmptyDocument"),
        "missing.txt": ("failed", "UnreadableDocument"),
    }
    assert [source for source, _ in summary.failed] == [
        "enc.pdf",
        "junk.txt",
        "empty.md",
        "missing.txt",
    ]
    assert "remove the password" in dict(summary.failed)["enc.pdf"]
    assert [r.source for r in store.list_documents()] == ["good.txt"]
    assert {c.document_id for c in store.all_chunks()} == {document_id_for("good.txt")}


def test_failed_replacement_keeps_the_old_version(
    tmp_path: Path, store: MemoryStore, pipeline: IngestPipeline
) -> None:
    path = tmp_path / "a.txt"
    path.write_text("first version")
    pipeline.ingest_file(store, path)
    path.write_bytes(b"\x00\x01binary now")
    result = pipeline.ingest_file(store, path)
    assert result.status == "failed"
    assert [c.text for c in store.all_chunks()] == ["first version"]


def test_metadata_is_copied_onto_chunks_and_reserved_keys_refused(
    tmp_path: Path, store: MemoryStore, pipeline: IngestPipeline
) -> None:
    path = tmp_path / "m.docx"
    path.write_bytes(make_docx())
    result = pipeline.ingest_file(store, path, source="manuals/m.docx", metadata={"team": "red"})
    assert result.source == "manuals/m.docx"
    chunks = store.get_chunks(result.document_id)
    assert chunks
    assert {c.metadata["team"] for c in chunks} == {"red"}
    assert {c.metadata["source"] for c in chunks} == {"manuals/m.docx"}
    assert chunks[0].metadata["heading_path"] == "Kite Manual > Getting Started"
    record = store.get_document(result.document_id)
    assert record is not None
    assert record.metadata == {"team": "red"}
    # Same bytes, no metadata given: unchanged (the stored metadata is kept).
    again = pipeline.ingest_file(store, path, source="manuals/m.docx")
    assert again.status == "unchanged"
    # Same bytes, new metadata: re-ingested so the chunks carry it.
    retag = pipeline.ingest_file(store, path, source="manuals/m.docx", metadata={"team": "blue"})
    assert retag.status == "replaced"
    assert {c.metadata["team"] for c in store.get_chunks(result.document_id)} == {"blue"}
    with pytest.raises(InvalidRequest, match="source.*reserved"):
        pipeline.ingest_file(store, path, metadata={"source": "x"})
    with pytest.raises(InvalidRequest, match="str, int, float or bool"):
        pipeline.ingest_file(store, path, metadata={"tags": ["a"]})


def test_chunk_size_override_and_validation(
    tmp_path: Path, store: MemoryStore, pipeline: IngestPipeline
) -> None:
    path = tmp_path / "long.txt"
    path.write_text(LOREM * 10)
    small = pipeline.ingest_file(store, path, chunk_size=30, chunk_overlap=5)
    path.write_text(LOREM * 10 + " changed")
    large = pipeline.ingest_file(store, path, chunk_size=250, chunk_overlap=20)
    assert small.chunk_count > large.chunk_count
    for chunk in store.get_chunks(large.document_id):
        assert len(embedding_text(chunk).split()) + 2 <= 250
    with pytest.raises(InvalidRequest, match="at most 256"):
        pipeline.ingest_file(store, path, chunk_size=300)
    with pytest.raises(InvalidRequest, match="greater than chunk_overlap"):
        pipeline.ingest_file(store, path, chunk_size=10, chunk_overlap=10)
    # Same bytes and sizes: unchanged; another chunk size re-chunks them.
    assert pipeline.ingest_file(store, path, chunk_size=250, chunk_overlap=20).status == (
        "unchanged"
    )
    assert pipeline.ingest_file(store, path, chunk_size=100).status == "replaced"
    # A small size alone caps the default overlap (8) below it.
    path.write_text("short text, changed again")
    assert pipeline.ingest_file(store, path, chunk_size=5).status == "replaced"


def test_bad_default_sizes_are_a_configuration_error(limits: LoadLimits) -> None:
    with pytest.raises(ConfigurationError, match="at most 256"):
        IngestPipeline(HashEmbedder(), chunk_size=512, chunk_overlap=10, limits=limits)


def test_store_of_another_model_is_refused(tmp_path: Path, pipeline: IngestPipeline) -> None:
    path = tmp_path / "a.txt"
    path.write_text("text")
    other = MemoryStore("other", "another-model", 64)
    with pytest.raises(EmbeddingMismatch, match="another-model"):
        pipeline.ingest_file(other, path)
    with pytest.raises(EmbeddingMismatch):
        pipeline.ingest_paths(MemoryStore("o", "hash-64", 32), [path], progress_bar=False)


def test_progress_reports_embedded_chunks(
    tmp_path: Path, store: MemoryStore, pipeline: IngestPipeline
) -> None:
    path = tmp_path / "p.txt"
    path.write_text(LOREM * 40)
    seen: list[int] = []
    result = pipeline.ingest_file(store, path, progress=seen.append)
    assert sum(seen) == result.chunk_count > 1


def test_oversize_file_fails_without_being_read(
    tmp_path: Path, store: MemoryStore, embedder: HashEmbedder
) -> None:
    pipeline = IngestPipeline(
        embedder, chunk_size=64, chunk_overlap=8, limits=LoadLimits(max_file_bytes=100)
    )
    path = tmp_path / "big.txt"
    path.write_text("x " * 100)
    result = pipeline.ingest_file(store, path)
    assert (result.status, result.error_type) == ("failed", "FileTooLarge")
    assert embedder.embed_calls == 0


def test_run_ingest_prints_summary(
    tmp_path: Path, store: MemoryStore, pipeline: IngestPipeline
) -> None:
    docs = make_corpus(tmp_path)
    (docs / "broken.pdf").write_bytes(b"not a pdf")
    out = io.StringIO()
    summary = run_ingest([docs], store, pipeline, include=(), exclude=("*.csv",), out=out)
    text = out.getvalue()
    assert summary.created == 4
    assert "files: 5 (created 4, replaced 0, unchanged 0, failed 1, skipped 2)" in text
    assert f"chunks: {summary.chunks}" in text
    assert "chunks per second:" in text
    assert "seconds:" in text
    assert "\n  broken.pdf: the file is not a PDF (it does not start with %PDF)" in text


# -- the real model -----------------------------------------------------------------------


@pytest.mark.integration
def test_real_pipeline_idempotent_and_searchable(
    tmp_path: Path, real_embedder: Any, limits: LoadLimits
) -> None:
    embedder = CountingEmbedder(real_embedder)
    store = MemoryStore("docs", real_embedder.model_name, real_embedder.dimension)
    pipeline = IngestPipeline(embedder, chunk_size=200, chunk_overlap=30, limits=limits)
    html = tmp_path / "html"
    shutil.copytree(HTML_DIR, html)
    (html / "heaps.pdf").write_bytes(make_pdf([LOREM * 3, LOREM]))
    first = pipeline.ingest_paths(store, [html], progress_bar=False)
    assert (first.created, first.failed) == (6, [])
    assert len(embedder.texts) == first.chunks == store.count()
    for text in embedder.texts:
        assert real_embedder.count_tokens(text) <= 200
    embedder.texts.clear()
    second = pipeline.ingest_paths(store, [html], progress_bar=False)
    assert second.unchanged == 6
    assert second.chunks == 0
    assert embedder.texts == []
    hits = store.search(real_embedder.embed_query("how do I serialize a dict to a JSON string"), 3)
    assert hits[0].chunk.metadata["source"] == "json.html"
    pdf_hits = store.search(real_embedder.embed_query("heap smallest element root"), 10)
    assert any(h.chunk.metadata.get("page") in (1, 2) for h in pdf_hits)
