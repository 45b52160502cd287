"""Many files through the pipeline at once: parse ahead on a thread pool, embed in groups.

A bounded producer/consumer: ``workers`` threads hash, parse and chunk files (``prepare``),
at most ``prefetch`` files ahead of the consumer, the calling thread, which gathers the chunks
of consecutive files into groups of about ``group_chunks``, embeds each group in one call (the
embedder sorts and packs it by tokens) and stores each file of the group on its own. So a file
is stored whole or not at all, and one that fails stores nothing while the others go on.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import IngestError
from core.tracing import span
from core.types import Chunk, DocumentRecord, embedding_text
from ingest.chunking import document_id_for
from ingest.results import FileResult, FileStatus, failed_result
from vectorstores.base import VectorStore

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]
Vectors = npt.NDArray[np.float32]


@dataclass
class Prepared:
    """A file hashed, parsed and chunked, waiting for its vectors, or already decided.

    Attributes:
        source: The document's source name.
        document_id: Its id.
        result: The outcome when known without embedding (``unchanged``, ``failed``).
        error: An unexpected exception raised while preparing (not an ``IngestError``).
        record: The record to store with the chunks.
        existing: Whether the store had the document before (``replaced``, not ``created``).
        chunks: The chunks to embed and store.
        warnings: What the loader could not read but stored the file without.
    """

    source: str
    document_id: str
    result: FileResult | None = None
    error: Exception | None = None
    record: DocumentRecord | None = None
    existing: bool = False
    chunks: list[Chunk] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def commit(store: VectorStore, prepared: Prepared, vectors: Vectors) -> FileResult:
    """Store a prepared file's record, chunks and vectors in one ``replace_document``."""
    assert prepared.record is not None
    with span("store.replace_document", source=prepared.source, chunks=len(prepared.chunks)):
        store.replace_document(prepared.record, prepared.chunks, vectors)
    status: FileStatus = "replaced" if prepared.existing else "created"
    return FileResult(
        prepared.source,
        prepared.document_id,
        status,
        len(prepared.chunks),
        warnings=tuple(prepared.warnings),
    )


@dataclass(frozen=True)
class Stages:
    """What a batch does to each file, bound by the pipeline to one store and its options.

    Attributes:
        prepare: Hashes, parses and chunks one ``(path, source)`` (runs on worker threads);
            an ``IngestError`` comes back as a decided ``Prepared``, others are raised.
        embed: Embeds texts (the cache first, then the model).
        commit: Stores a prepared file with its vectors.
        workers: Threads preparing files.
        prefetch: Most files prepared ahead of the one being embedded.
        group_chunks: Chunks of consecutive files gathered into one ``embed`` call.
    """

    prepare: Callable[[Path, str], Prepared]
    embed: Callable[[Sequence[str]], Vectors]
    commit: Callable[[Prepared, Vectors], FileResult]
    workers: int
    prefetch: int
    group_chunks: int


def prefetched(
    pool: ThreadPoolExecutor, work: Callable[[Any], Prepared], items: Iterable[Any], ahead: int
) -> Iterator[Prepared]:
    """Yield ``work(item)`` in order, keeping at most ``ahead`` items in flight in ``pool``."""
    pending: deque[Future[Prepared]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


class BatchRun:
    """One ``IngestPipeline.ingest_many`` call (arguments already validated)."""

    def __init__(
        self,
        stages: Stages,
        files: Sequence[tuple[Path, str]],
        *,
        progress: Progress | None,
        on_file_done: Callable[[FileResult], None] | None,
        isolate_errors: bool,
    ) -> None:
        self._stages = stages
        self._files = files
        self._progress = progress
        self._on_file_done = on_file_done
        self._isolate = isolate_errors
        self._results: list[FileResult | None] = [None] * len(files)

    def run(self) -> list[FileResult]:
        """Ingest every file; return their results in the order given."""
        stages = self._stages
        group: list[tuple[int, Prepared]] = []
        seen: set[str] = set()
        with ThreadPoolExecutor(stages.workers, thread_name_prefix="ingest-parse") as pool:
            items = enumerate(prefetched(pool, self._prepare, self._files, stages.prefetch))
            for index, first in items:
                prepared = first
                if prepared.document_id in seen:
                    # The same source twice in one batch: this copy was prepared before the
                    # first was stored, so store that one, then prepare this one again.
                    self._flush(group)
                    group = []
                    prepared = self._prepare(self._files[index])
                seen.add(prepared.document_id)
                if prepared.error is not None:
                    self._fail(index, prepared, prepared.error)
                elif prepared.result is not None:
                    self._done(index, prepared.result)
                else:
                    group.append((index, prepared))
                    if sum(len(p.chunks) for _, p in group) >= stages.group_chunks:
                        self._flush(group)
                        group = []
            self._flush(group)
        return [result for result in self._results if result is not None]

    def _prepare(self, item: tuple[Path, str]) -> Prepared:
        path, source = item
        try:
            return self._stages.prepare(path, source)
        except Exception as exc:  # reported, or re-raised, by the consumer thread
            return Prepared(source, document_id_for(source), error=exc)

    def _done(self, index: int, result: FileResult) -> None:
        self._results[index] = result
        if self._on_file_done is not None:
            self._on_file_done(result)

    def _fail(self, index: int, prepared: Prepared, exc: Exception) -> None:
        if not isinstance(exc, IngestError):
            if not self._isolate:
                raise exc
            logger.error("ingesting %s failed", prepared.source, exc_info=exc)
        self._done(index, failed_result(prepared.source, prepared.document_id, exc))

    def _flush(self, group: list[tuple[int, Prepared]]) -> None:
        """Embed a group's chunks in one call, then store each file of it on its own."""
        if not group:
            return
        texts = [embedding_text(chunk) for _, p in group for chunk in p.chunks]
        try:
            with span("embedding", texts=len(texts)):
                vectors = self._stages.embed(texts)
        except Exception as exc:
            if len(group) > 1:  # find the file at fault: embed each on its own
                for item in group:
                    self._flush([item])
            else:
                self._fail(group[0][0], group[0][1], exc)
            return
        start = 0
        for index, prepared in group:
            own = vectors[start : start + len(prepared.chunks)]
            start += len(prepared.chunks)
            try:
                result = self._stages.commit(prepared, own)
            except Exception as exc:
                self._fail(index, prepared, exc)
                continue
            if self._progress is not None:
                self._progress(len(prepared.chunks))
            self._done(index, result)
