"""Uploads: check, stage and ingest files now or as a background job, reporting progress."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from core.errors import LimitExceeded
from core.types import MetadataValue
from ingest.jobs import JobOptions
from ingest.pipeline import check_metadata
from ingest.results import FileResult

from .collections import CollectionService
from .documents import DocumentService, StagedFile, parse_json_object
from .jobs import Job, JobService
from .observer import ServiceObserver


@dataclass(frozen=True)
class UploadOptions:
    """How an upload's files are ingested.

    Attributes:
        metadata: User metadata for each file, as a JSON object's text (None or blank keeps
            a replaced document's metadata).
        chunk_size: Overrides the configured chunk size.
        chunk_overlap: Overrides the configured chunk overlap.
    """

    metadata: str | None = None
    chunk_size: int | None = None
    chunk_overlap: int | None = None


class UploadService:
    """Runs one upload end to end: the checks, staging, ingestion, job progress, metrics."""

    def __init__(
        self,
        collections: CollectionService,
        documents: DocumentService,
        jobs: JobService,
        observer: ServiceObserver,
        max_files: int,
    ) -> None:
        self._collections = collections
        self._documents = documents
        self._jobs = jobs
        self._observer = observer
        self._max_files = max_files

    def upload(
        self,
        collection: str,
        files: Sequence[tuple[str | None, BinaryIO]],
        options: UploadOptions,
        *,
        wait: bool = True,
    ) -> list[FileResult] | Job:
        """Ingest uploaded files: their results, or the job ingesting them when not ``wait``.

        Everything that can be refused is refused before a byte is stored: an unknown
        collection, bad metadata, too many files. Each file then succeeds or fails on its own.

        Raises:
            CollectionNotFound: no such collection.
            InvalidRequest: metadata that is not a JSON object, or has reserved keys or
                values that are not strings, numbers or booleans.
            LimitExceeded: more files than ``max_files``.
        """
        self._collections.get(collection)  # 404 before reading anything
        raw = parse_json_object(options.metadata, "metadata")
        metadata = None if raw is None else check_metadata(raw)
        if len(files) > self._max_files:
            raise LimitExceeded(
                f"{len(files)} files in one upload; at most {self._max_files} are accepted"
            )
        staged = self._documents.stage(files)
        if not wait:  # staged durably in the store's database before the 202
            job_options = JobOptions(metadata, options.chunk_size, options.chunk_overlap)
            return self._jobs.submit(collection, staged, job_options)
        return self._ingest(collection, staged, metadata, options)

    def _ingest(
        self,
        collection: str,
        staged: list[StagedFile],
        metadata: dict[str, MetadataValue] | None,
        options: UploadOptions,
    ) -> list[FileResult]:
        return self._documents.ingest_staged(
            collection,
            staged,
            metadata,
            options.chunk_size,
            options.chunk_overlap,
            self._observer.file_ingested,
        )
