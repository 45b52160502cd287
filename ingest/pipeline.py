"""The ingestion pipeline: file to chunks to vectors to the store, idempotently.

A document's identity is its source name (``document_id_for(source)``); its version is the
sha256 of its bytes. Ingesting the same bytes again is a no-op reported as ``unchanged`` (the
file is hashed, not parsed, and nothing is embedded); new bytes under a known source replace
the document's chunks in one ``store.replace_document`` call (``replaced``). A file that fails
stores nothing and is reported ``failed``; the rest of a batch goes on.

Only the bytes and the user metadata decide ``unchanged``: re-ingesting the same bytes with
another chunk size keeps the stored chunks (delete the document first to re-chunk it).
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core.errors import (
    ConfigurationError,
    EmbeddingMismatch,
    EmptyDocument,
    IngestError,
    InvalidRequest,
    UnreadableDocument,
)
from ingest.base import Embedder
from ingest.chunking import (
    RESERVED_METADATA,
    ChunkTokenizer,
    WhitespaceTokenizer,
    check_chunk_size,
    chunk_document,
    document_id_for,
    embedding_text,
)
from ingest.limits import LoadLimits
from ingest.loaders import LOADERS, check_file, file_extension, load_file
from vectorstores.base import Chunk, DocumentRecord, MetadataValue, VectorStore

logger = logging.getLogger(__name__)

FileStatus = Literal["created", "unchanged", "replaced", "failed"]
_HASH_BLOCK = 1 << 20
_EMBED_SLICE = 128


@dataclass(frozen=True)
class FileResult:
    """The outcome of ingesting one file.

    Attributes:
        source: The document's source name.
        document_id: Its id.
        status: ``created``, ``unchanged``, ``replaced`` or ``failed``.
        chunk_count: Chunks the document has in the store (0 when failed).
        error: Why it failed, fit to show a user (failed only).
        error_type: The error's class name, e.g. ``UnreadableDocument`` (failed only).
    """

    source: str
    document_id: str
    status: FileStatus
    chunk_count: int = 0
    error: str | None = None
    error_type: str | None = None


@dataclass(frozen=True)
class IngestSummary:
    """The outcome of ingesting a batch of files.

    Attributes:
        files: Files attempted.
        created: Documents stored for the first time.
        replaced: Documents whose content changed and were replaced.
        unchanged: Documents whose bytes were already stored (nothing embedded).
        failed: ``(source, reason)`` of each file that failed.
        chunks: Chunks embedded and stored.
        seconds: Wall time of the batch.
        chunks_per_second: ``chunks / seconds``.
        skipped: Files in the given folders left out: unsupported type, hidden, or filtered
            out by the include/exclude globs.
        results: One ``FileResult`` per file attempted.
    """

    files: int
    created: int
    replaced: int
    unchanged: int
    failed: list[tuple[str, str]]
    chunks: int
    seconds: float
    chunks_per_second: float
    skipped: int = 0
    results: list[FileResult] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    """Return the sha256 hex digest of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _matches(patterns: Sequence[str], relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(relative, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def collect_files(
    paths: Iterable[Path], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[tuple[Path, str]], int]:
    """Expand files and folders into ``(path, source)`` pairs, sorted, and a skipped count.

    A file given directly has its name as source; a file found in a folder has its path
    relative to that folder (``library/json.html``). In folders, hidden entries and files of
    unsupported types are skipped. Globs match the source or the bare file name
    (``*.html``, ``library/*``); a file must match one ``include`` glob (if any) and no
    ``exclude`` glob. A path that does not exist is returned as is, to be reported failed.
    """
    found: list[tuple[Path, str]] = []
    skipped = 0
    for root in paths:
        if not root.is_dir():
            found.append((root, root.name))
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(folder) / name
                if name.startswith(".") or path.suffix.lower() not in LOADERS:
                    skipped += 1
                    continue
                found.append((path, path.relative_to(root).as_posix()))
    kept = [
        (path, source)
        for path, source in found
        if (not include or _matches(include, source)) and not _matches(exclude, source)
    ]
    return kept, skipped + len(found) - len(kept)


def tokenizer_for(embedder: Embedder) -> ChunkTokenizer:
    """Return the embedder's ``chunk_tokenizer``, else an approximation by whitespace words."""
    tokenizer = getattr(embedder, "chunk_tokenizer", None)
    if isinstance(tokenizer, ChunkTokenizer):
        return tokenizer
    return WhitespaceTokenizer(special_tokens=embedder.count_tokens(""))


def _user_metadata(metadata: Mapping[str, Any]) -> dict[str, MetadataValue]:
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
    ) -> None:
        """Configure the pipeline.

        Args:
            embedder: Embeds the chunks; its ``max_seq_length`` bounds ``chunk_size``.
            chunk_size: Default tokens per chunk, heading path and special tokens included.
            chunk_overlap: Default tokens shared by consecutive chunks.
            limits: Bounds on loading one file.
            tokenizer: Overrides the embedder's tokenizer for chunking (see ``tokenizer_for``).

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
        self.tokenizer = tokenizer or tokenizer_for(embedder)

    def check_store(self, store: VectorStore) -> None:
        """Refuse a collection made for another embedding model or dimension.

        Raises:
            EmbeddingMismatch: the collection's model or dimension differs from the embedder's.
        """
        if (store.embedding_model, store.dimension) != (
            self.embedder.model_name,
            self.embedder.dimension,
        ):
            raise EmbeddingMismatch(
                f"collection '{store.name}' holds vectors of {store.embedding_model} "
                f"({store.dimension} dimensions) but the embedder is "
                f"{self.embedder.model_name} ({self.embedder.dimension}); ingest into a "
                "collection made with this model",
                {"collection": store.name, "embedding_model": store.embedding_model},
            )

    def _embed(
        self, chunks: Sequence[Chunk], progress: Callable[[int], None] | None
    ) -> npt.NDArray[np.float32]:
        parts: list[npt.NDArray[np.float32]] = []
        for start in range(0, len(chunks), _EMBED_SLICE):
            part = chunks[start : start + _EMBED_SLICE]
            parts.append(self.embedder.embed([embedding_text(chunk) for chunk in part]))
            if progress is not None:
                progress(len(part))
        return np.concatenate(parts).astype(np.float32, copy=False)

    def ingest_file(
        self,
        store: VectorStore,
        path: Path,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        progress: Callable[[int], None] | None = None,
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
        size = self.chunk_size if chunk_size is None else chunk_size
        overlap = self.chunk_overlap if chunk_overlap is None else chunk_overlap
        if chunk_overlap is None and chunk_size is not None:
            overlap = min(overlap, max(0, size - 1))
        check_chunk_size(size, overlap, self.embedder.max_seq_length)
        user_metadata = None if metadata is None else _user_metadata(metadata)
        self.check_store(store)
        source = source or path.name
        document_id = document_id_for(source)
        try:
            check_file(source, file_extension(path, source), path.stat().st_size, self.limits)
            digest = file_sha256(path)
        except IngestError as exc:
            return _failed(source, document_id, exc)
        except OSError as exc:
            error = UnreadableDocument(
                f"{source}: the file cannot be read ({exc.strerror or exc}); check that it "
                "exists and is readable",
                {"file": source},
            )
            return _failed(source, document_id, error)
        existing = store.get_document(document_id)
        if user_metadata is None:
            user_metadata = dict(existing.metadata) if existing is not None else {}
        if (
            existing is not None
            and existing.content_hash == digest
            and existing.metadata == user_metadata
        ):
            return FileResult(source, document_id, "unchanged", existing.chunk_count)
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
            vectors = self._embed(chunks, progress)
        except IngestError as exc:
            return _failed(source, document_id, exc)
        now = time.time()
        record = DocumentRecord(
            id=document_id,
            source=source,
            content_hash=digest,
            chunk_count=len(chunks),
            metadata=user_metadata,
            created_at=existing.created_at if existing is not None else now,
            updated_at=now,
        )
        store.replace_document(record, chunks, vectors)
        return FileResult(
            source, document_id, "created" if existing is None else "replaced", len(chunks)
        )

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
        files, skipped = collect_files(paths, include, exclude)
        results: list[FileResult] = []
        chunks = 0
        with tqdm(total=len(files), unit="file", disable=not progress_bar) as bar:
            for path, source in files:
                try:
                    result = self.ingest_file(store, path, source)
                except Exception as exc:  # one bad file must not stop the batch
                    logger.exception("ingesting %s failed", source)
                    result = _failed(source, document_id_for(source), exc)
                results.append(result)
                if result.status in ("created", "replaced"):
                    chunks += result.chunk_count
                bar.update(1)
                bar.set_postfix(chunks=chunks, refresh=False)
        seconds = time.perf_counter() - started
        return IngestSummary(
            files=len(results),
            created=sum(r.status == "created" for r in results),
            replaced=sum(r.status == "replaced" for r in results),
            unchanged=sum(r.status == "unchanged" for r in results),
            failed=[(r.source, r.error or "") for r in results if r.status == "failed"],
            chunks=chunks,
            seconds=seconds,
            chunks_per_second=chunks / seconds if seconds > 0 else 0.0,
            skipped=skipped,
            results=results,
        )


def _failed(source: str, document_id: str, exc: Exception) -> FileResult:
    message = exc.message if isinstance(exc, IngestError) else f"{source}: {exc}"
    return FileResult(source, document_id, "failed", error=message, error_type=type(exc).__name__)
