"""The ingestion pipeline: file to chunks to vectors to the store, idempotently.

A document's identity is its source name (``document_id_for(source)``); its version is the
sha256 of its bytes and its chunking parameters (``content_version``). Ingesting the same bytes
with the same chunk size and overlap again is a no-op reported as ``unchanged`` (the file is
hashed, not parsed, and nothing is embedded); new bytes, or another chunk size or overlap,
under a known source replace the document's chunks in one ``store.replace_document`` call
(``replaced``). A file that fails stores nothing and is reported ``failed``; the rest of a
batch goes on.

Many files (``ingest_many``, ``ingest_paths``) flow through a bounded producer/consumer
pipeline (``ingest.batching``): ``workers`` threads hash, parse and chunk up to ``prefetch``
files ahead while the calling thread embeds and stores, so parsing overlaps the model's forward
passes (which release the GIL). One worker by default: parsing is GIL-bound, so a second
thread adds nothing but contention, and on a 2-core machine the one parse thread already
shares the cores with torch's threads. Chunks of consecutive files are embedded together, up
to ``group_chunks`` at a time, so batches stay full and sorted by length; each file is still
stored on its own, in one ``replace_document``, once all its vectors exist.

With an ``EmbeddingCache``, vectors are looked up by the hash of the embedded text and the
embedder's model and backend first: only texts never embedded before reach the model, so an
edited document re-embeds only its changed chunks.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import (
    ConfigurationError,
    EmptyDocument,
    IngestError,
    InvalidRequest,
    UnreadableDocument,
)
from core.types import Chunk, DocumentRecord, MetadataValue, embedding_text
from ingest.base import ChunkTokenizer, Embedder
from ingest.batching import BatchRun, Prepared, Progress, Stages, commit
from ingest.chunking import (
    RESERVED_METADATA,
    check_chunk_size,
    chunk_document,
    document_id_for,
)
from ingest.embedding_cache import EmbeddingCache
from ingest.limits import LoadLimits
from ingest.loaders import check_file, file_extension, load_file
from ingest.results import (
    FileResult,
    FileStatus,
    IngestSummary,
    collect_files,
    collect_files_named,
    content_version,
    failed_result,
    file_sha256,
    summarise,
)
from vectorstores.base import VectorStore, check_embedding

__all__ = [
    "FileResult",
    "FileStatus",
    "IngestPipeline",
    "IngestSummary",
    "collect_files",
    "collect_files_named",
    "content_version",
    "check_metadata",
    "file_sha256",
]

logger = logging.getLogger(__name__)

_EMBED_SLICE = 128


def check_metadata(metadata: Mapping[str, Any]) -> dict[str, MetadataValue]:
    """Return user metadata fit to store, or refuse it (the one check, used by every caller).

    Raises:
        InvalidRequest: a reserved key (set by ingestion), an empty or non-string key, or a
            value that is not a string, number or boolean.
    """
    reserved = sorted(RESERVED_METADATA.intersection(metadata))
    if reserved:
        raise InvalidRequest(
            f"metadata keys {', '.join(reserved)} are reserved (set by ingestion); rename them",
            {"reserved": sorted(RESERVED_METADATA)},
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or not isinstance(value, str | int | float | bool):
            raise InvalidRequest(
                f"metadata {key!r}: keys are non-empty strings and values str, int, float or "
                f"bool; got {type(value).__name__}",
                {"key": str(key)},
            )
    return dict(metadata)


class IngestPipeline:
    """Loads, chunks, embeds and stores files (see the module docstring)."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        chunk_size: int,
        chunk_overlap: int,
        limits: LoadLimits,
        tokenizer: ChunkTokenizer | None = None,
        cache: EmbeddingCache | None = None,
        workers: int = 1,
        prefetch: int = 16,
        group_chunks: int = 512,
    ) -> None:
        """Configure the pipeline.

        Args:
            embedder: Embeds the chunks; its ``max_seq_length`` bounds ``chunk_size``.
            chunk_size: Default tokens per chunk, heading path and special tokens included.
            chunk_overlap: Default tokens shared by consecutive chunks.
            limits: Bounds on loading one file.
            tokenizer: Overrides the embedder's ``chunk_tokenizer`` for chunking.
            cache: Vectors already computed, by embedded text and model (none by default).
            workers: Threads that hash, parse and chunk files ahead of the embedder.
            prefetch: Most files parsed ahead of the one being embedded (bounds memory).
            group_chunks: Chunks of consecutive files gathered into one embedding call.

        Raises:
            ConfigurationError: the chunk size or overlap is out of range.
        """
        try:
            check_chunk_size(chunk_size, chunk_overlap, embedder.max_seq_length)
        except InvalidRequest as exc:
            raise ConfigurationError(exc.message, exc.detail) from exc
        self.embedder = embedder
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.limits = limits
        self.tokenizer = tokenizer or embedder.chunk_tokenizer
        self.cache = cache
        self.cache_namespace = embedder.cache_namespace
        self.workers = max(1, workers)
        self.prefetch = max(1, prefetch)
        self.group_chunks = max(1, group_chunks)

    def check_store(self, store: VectorStore) -> None:
        """Refuse a collection made for another embedding model or dimension.

        Raises:
            EmbeddingMismatch: the collection's model or dimension differs from the embedder's.
        """
        check_embedding(
            store.name,
            store.embedding_model,
            store.dimension,
            self.embedder.model_name,
            self.embedder.dimension,
        )

    def _sizes(self, chunk_size: int | None, chunk_overlap: int | None) -> tuple[int, int]:
        size = self.chunk_size if chunk_size is None else chunk_size
        overlap = self.chunk_overlap if chunk_overlap is None else chunk_overlap
        if chunk_overlap is None and chunk_size is not None:
            overlap = min(overlap, max(0, size - 1))
        check_chunk_size(size, overlap, self.embedder.max_seq_length)
        return size, overlap

    def prepare_file(
        self,
        store: VectorStore,
        path: Path,
        source: str,
        user_metadata: dict[str, MetadataValue] | None,
        size: int,
        overlap: int,
    ) -> Prepared:
        """Hash one file, decide whether it is ``unchanged``, else load and chunk it.

        An ``IngestError`` becomes a ``failed`` result; other exceptions propagate.
        """
        document_id = document_id_for(source)
        try:
            check_file(source, file_extension(path, source), path.stat().st_size, self.limits)
            version = content_version(path, size, overlap)
        except IngestError as exc:
            return Prepared(source, document_id, failed_result(source, document_id, exc))
        except OSError as exc:
            error = UnreadableDocument(
                f"{source}: the file cannot be read ({exc.strerror or exc}); check that it "
                "exists and is readable",
                {"file": source},
            )
            return Prepared(source, document_id, failed_result(source, document_id, error))
        existing = store.get_document(document_id)
        if user_metadata is None:
            user_metadata = dict(existing.metadata) if existing is not None else {}
        if (
            existing is not None
            and existing.content_hash == version
            and existing.metadata == user_metadata
        ):
            result = FileResult(source, document_id, "unchanged", existing.chunk_count)
            return Prepared(source, document_id, result)
        try:
            document = load_file(path, source, self.limits)
            chunks = chunk_document(
                document,
                document_id,
                self.tokenizer,
                chunk_size=size,
                chunk_overlap=overlap,
                metadata=user_metadata,
            )
            if not chunks:
                raise EmptyDocument(f"{source}: no text to index", {"file": source})
        except IngestError as exc:
            return Prepared(source, document_id, failed_result(source, document_id, exc))
        now = time.time()
        record = DocumentRecord(
            id=document_id,
            source=source,
            content_hash=version,
            chunk_count=len(chunks),
            metadata=user_metadata,
            created_at=existing.created_at if existing is not None else now,
            updated_at=now,
        )
        return Prepared(
            source,
            document_id,
            record=record,
            existing=existing is not None,
            chunks=chunks,
            warnings=document.warnings,
        )

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts: what the cache has is taken from it, what the model computes is cached."""
        dimension = self.embedder.dimension
        out = np.zeros((len(texts), dimension), dtype=np.float32)
        found: dict[int, npt.NDArray[np.float32]] = {}
        if self.cache is not None:
            found = self.cache.get_many(self.cache_namespace, texts, dimension)
        for index, vector in found.items():
            out[index] = vector
        missing: dict[str, list[int]] = {}
        for index, text in enumerate(texts):
            if index not in found:
                missing.setdefault(text, []).append(index)
        if missing:
            unique = list(missing)
            computed = np.concatenate(
                [
                    self.embedder.embed(unique[start : start + _EMBED_SLICE * 4])
                    for start in range(0, len(unique), _EMBED_SLICE * 4)
                ]
            ).astype(np.float32, copy=False)
            for row, text in enumerate(unique):
                out[missing[text]] = computed[row]
            if self.cache is not None:
                self.cache.put_many(self.cache_namespace, unique, computed)
        return out

    def _embed(self, chunks: Sequence[Chunk], progress: Progress | None) -> npt.NDArray[np.float32]:
        parts: list[npt.NDArray[np.float32]] = []
        for start in range(0, len(chunks), _EMBED_SLICE):
            part = chunks[start : start + _EMBED_SLICE]
            parts.append(self.embed_texts([embedding_text(chunk) for chunk in part]))
            if progress is not None:
                progress(len(part))
        return np.concatenate(parts)

    def ingest_file(
        self,
        store: VectorStore,
        path: Path,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        progress: Progress | None = None,
    ) -> FileResult:
        """Ingest one file into ``store``.

        Args:
            store: The collection to write into.
            path: The file.
            source: The document's name; the file name by default.
            metadata: User metadata for the document and each chunk. ``None`` keeps the
                metadata a replaced document had; ``{}`` clears it. Different metadata on the
                same bytes re-ingests the document.
            chunk_size: Overrides the default chunk size.
            chunk_overlap: Overrides the default chunk overlap.
            progress: Called with the number of chunks embedded, as they are.

        Returns:
            The outcome; a file that cannot be ingested is ``failed``, never an exception.

        Raises:
            InvalidRequest: bad chunk sizes, or reserved or non-scalar metadata.
            EmbeddingMismatch: the collection belongs to another model or dimension.
        """
        size, overlap = self._sizes(chunk_size, chunk_overlap)
        user_metadata = None if metadata is None else check_metadata(metadata)
        self.check_store(store)
        prepared = self.prepare_file(store, path, source or path.name, user_metadata, size, overlap)
        if prepared.result is not None:
            return prepared.result
        try:
            vectors = self._embed(prepared.chunks, progress)
        except IngestError as exc:
            return failed_result(prepared.source, prepared.document_id, exc)
        return commit(store, prepared, vectors)

    def ingest_many(
        self,
        store: VectorStore,
        files: Iterable[tuple[Path, str]],
        metadata: dict[str, Any] | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        progress: Progress | None = None,
        on_file_done: Callable[[FileResult], None] | None = None,
        isolate_errors: bool = True,
    ) -> list[FileResult]:
        """Ingest ``(path, source)`` pairs, parsing ahead while embedding (module docstring).

        Each file is ingested as ``ingest_file`` would, with the same arguments.

        Args:
            store: The collection to write into.
            files: The files and their source names.
            metadata: As for ``ingest_file``, applied to every file.
            chunk_size: As for ``ingest_file``.
            chunk_overlap: As for ``ingest_file``.
            progress: Called with the number of chunks embedded, file by file.
            on_file_done: Called with each file's result as soon as it is known.
            isolate_errors: Report any exception of one file as its failure and go on (else
                only ingestion errors are, and other exceptions propagate).

        Returns:
            One result per file, in the order given.

        Raises:
            InvalidRequest: bad chunk sizes, or reserved or non-scalar metadata.
            EmbeddingMismatch: the collection belongs to another model or dimension.
        """
        size, overlap = self._sizes(chunk_size, chunk_overlap)
        user_metadata = None if metadata is None else check_metadata(metadata)
        self.check_store(store)

        def prepare(path: Path, source: str) -> Prepared:
            own = None if user_metadata is None else dict(user_metadata)
            return self.prepare_file(store, path, source, own, size, overlap)

        stages = Stages(
            prepare=prepare,
            embed=self.embed_texts,
            commit=functools.partial(commit, store),
            workers=self.workers,
            prefetch=self.prefetch,
            group_chunks=self.group_chunks,
        )
        return BatchRun(
            stages,
            list(files),
            progress=progress,
            on_file_done=on_file_done,
            isolate_errors=isolate_errors,
        ).run()

    def ingest_paths(
        self,
        store: VectorStore,
        paths: Iterable[Path],
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        progress_bar: bool = True,
    ) -> IngestSummary:
        """Ingest files and folders (recursively) into ``store``; see ``collect_files``.

        A file that fails, for any reason, is reported in ``failed`` and the others go on.

        Raises:
            EmbeddingMismatch: the collection belongs to another model or dimension.
        """
        from tqdm import tqdm

        started = time.perf_counter()
        self.check_store(store)
        files, skipped = collect_files_named(paths, include, exclude)
        chunks = 0
        with tqdm(total=len(files), unit="file", disable=not progress_bar) as bar:

            def file_done(result: FileResult) -> None:
                nonlocal chunks
                if result.status in ("created", "replaced"):
                    chunks += result.chunk_count
                bar.update(1)
                bar.set_postfix(chunks=chunks, refresh=False)

            results = self.ingest_many(store, files, on_file_done=file_done)
        return summarise(results, skipped, time.perf_counter() - started)
