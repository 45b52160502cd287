"""Uploads, document listing and deletion."""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from core.errors import DocumentNotFound, FileTooLarge, InvalidRequest, RagError
from core.types import Chunk, DocumentRecord, MetadataValue
from ingest.chunking import document_id_for
from ingest.pipeline import FileResult, IngestPipeline
from ingest.results import failed_result
from vectorstores.base import Filter
from vectorstores.filters import validate_filter

from .collections import CollectionService
from .vocabulary import normalize_filter

COPY_BLOCK = 1 << 20


@dataclass(frozen=True)
class StagedFile:
    """An uploaded file saved under a generated name, or the reason it could not be."""

    filename: str
    path: Path | None
    error: RagError | None = None


MAX_SOURCE_CHARS = 1024
MAX_SEGMENT_CHARS = 255


def parse_json_object(raw: str | None, field: str) -> dict[str, Any] | None:
    """Parse a form or query field that must hold a JSON object (None when blank)."""
    if raw is None or raw.strip() == "":
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"'{field}' is not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno}); "
            'send a JSON object such as {"team": "support"}'
        ) from exc
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{field}' must be a JSON object, got {type(value).__name__}")
    return value


def check_filename(name: str | None) -> str:
    """Return a safe source name for an upload, or raise ``InvalidRequest`` saying why not.

    A source is a file name or a relative path with '/' between folders (``a/README.md``),
    so files of the same name in different folders stay different documents. Absolute
    paths, '..' or '.' segments, backslashes and control characters are refused.
    """
    if not name or not name.strip():
        raise InvalidRequest("every uploaded file needs a file name")
    name = name.strip()
    shown = name.encode("unicode_escape").decode("ascii")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidRequest(
            f"file name '{shown}' contains control characters; rename the file without them"
        )
    if "\\" in name:
        raise InvalidRequest(
            f"file name '{name}' contains '\\'; separate folders with '/' (a/README.md)"
        )
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise InvalidRequest(
            f"file name '{name}' is an absolute path; send a relative one (a/README.md)"
        )
    segments = name.split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        raise InvalidRequest(
            f"file name '{name}' has an empty, '.' or '..' part; send a plain relative path "
            "such as a/README.md"
        )
    if len(name) > MAX_SOURCE_CHARS or any(len(seg) > MAX_SEGMENT_CHARS for seg in segments):
        raise InvalidRequest(
            f"file names are limited to {MAX_SOURCE_CHARS} characters, "
            f"{MAX_SEGMENT_CHARS} per folder or file name"
        )
    return name


class DocumentService:
    """Stages uploads on disk, runs the ingestion pipeline and reads documents back."""

    def __init__(
        self,
        collections: CollectionService,
        pipeline: IngestPipeline,
        upload_dir: Path,
        max_file_bytes: int,
        on_change: Callable[[str], None] | None = None,
        on_delete: Callable[[str], None] | None = None,
    ) -> None:
        # on_change(collection) runs after every write, to keep derived indexes (BM25) in step;
        # on_delete(collection) after a delete, before it is answered, so that derived copies
        # of the deleted text are gone by then (else on_change runs).
        self._on_change = on_change
        self._on_delete = on_delete
        self._collections = collections
        self._pipeline = pipeline
        self._upload_dir = upload_dir
        self._max_file_bytes = max_file_bytes
        upload_dir.mkdir(parents=True, exist_ok=True)
        for leftover in upload_dir.glob("*.part"):  # from a crash mid-upload
            leftover.unlink(missing_ok=True)

    def stage(self, uploads: Iterable[tuple[str | None, BinaryIO]]) -> list[StagedFile]:
        """Copy uploads to generated names on disk, block by block, checking the size limit."""
        staged: list[StagedFile] = []
        for raw_name, stream in uploads:
            try:
                name = check_filename(raw_name)
            except RagError as exc:
                staged.append(StagedFile(raw_name or "", None, exc))
                continue
            path = self._upload_dir / f"{uuid.uuid4().hex}.part"
            try:
                self._copy_limited(stream, path, name)
            except RagError as exc:
                path.unlink(missing_ok=True)
                staged.append(StagedFile(name, None, exc))
                continue
            staged.append(StagedFile(name, path))
        return staged

    def _copy_limited(self, stream: BinaryIO, path: Path, name: str) -> None:
        size = 0
        with path.open("wb") as out:
            while block := stream.read(COPY_BLOCK):
                size += len(block)
                if size > self._max_file_bytes:
                    raise FileTooLarge(
                        f"{name}: file is over the {self._max_file_bytes / 1e6:g} MB limit; "
                        "split it or raise RAG_INGEST__MAX_FILE_MB",
                        {"file": name, "limit_bytes": self._max_file_bytes},
                    )
                out.write(block)

    def ingest_staged(
        self,
        collection: str,
        staged: list[StagedFile],
        metadata: Mapping[str, MetadataValue] | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        on_file_done: Callable[[FileResult], None] | None = None,
        on_chunks: Callable[[int], None] | None = None,
    ) -> list[FileResult]:
        """Ingest staged files into a collection; each file succeeds or fails on its own.

        The staged files go through ``IngestPipeline.ingest_many`` together, so the next files
        are parsed while the current ones embed; results come back in upload order.
        """
        store = self._collections.get(collection)
        results: dict[int, FileResult] = {}
        ready = [(i, item.path, item.filename) for i, item in enumerate(staged) if item.path]
        try:
            for i, item in enumerate(staged):
                if item.path is None:
                    assert item.error is not None
                    document_id = document_id_for(item.filename) if item.filename else ""
                    results[i] = failed_result(item.filename, document_id, item.error)
                    if on_file_done is not None:
                        on_file_done(results[i])
            ingested = self._pipeline.ingest_many(
                store,
                [(path, name) for _, path, name in ready],
                metadata=dict(metadata) if metadata else None,
                chunk_size=chunk_size,
                chunk_overlap=chunk_overlap,
                progress=on_chunks,
                on_file_done=on_file_done,
                isolate_errors=False,
            )
            results.update((i, r) for (i, _, _), r in zip(ready, ingested, strict=True))
        finally:
            for item in staged:
                if item.path is not None:
                    item.path.unlink(missing_ok=True)
            if self._on_change is not None:  # keep the BM25 index in step
                self._on_change(collection)
        return [results[i] for i in sorted(results)]

    def list(
        self, collection: str, filter_json: str | None, limit: int, offset: int
    ) -> tuple[list[DocumentRecord], int]:
        """Return a page of documents and the total matching a filter given as JSON text."""
        filter: Filter | None = normalize_filter(parse_json_object(filter_json, "filter"))
        if filter:
            validate_filter(filter)
        store = self._collections.get(collection)
        return (
            store.list_documents(filter=filter, limit=limit, offset=offset),
            store.count_documents(filter),
        )

    def get(self, collection: str, document_id: str) -> DocumentRecord:
        """Return one document's record; raises ``DocumentNotFound``."""
        record = self._collections.get(collection).get_document(document_id)
        if record is None:
            raise DocumentNotFound(f"document '{document_id}' is not in collection '{collection}'")
        return record

    def chunks(self, collection: str, document_id: str) -> builtins.list[Chunk]:
        """Return a document's chunks in order."""
        self.get(collection, document_id)
        return self._collections.get(collection).get_chunks(document_id)

    def delete(self, collection: str, document_id: str) -> None:
        """Delete a document and every chunk of it."""
        if not self._collections.get(collection).delete_document(document_id):
            raise DocumentNotFound(f"document '{document_id}' is not in collection '{collection}'")
        if self._on_delete is not None:
            self._on_delete(collection)
        elif self._on_change is not None:
            self._on_change(collection)
