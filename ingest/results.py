"""What ingestion reports (``FileResult``, ``IngestSummary``) and how it finds and hashes files."""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.errors import IngestError
from ingest.chunking import document_id_for
from ingest.limits import LoadLimits
from ingest.loaders import LOADERS, check_file, file_extension
from vectorstores.base import VectorStore

FileStatus = Literal["created", "unchanged", "replaced", "failed"]
_HASH_BLOCK = 1 << 20
VERSION_SCHEME = "ragserver-chunks-v1"
"""Bump to make every stored document count as changed (re-chunked on the next ingest)."""


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
        exception: The error itself (failed only), for callers that map it to a status.
        warnings: What could not be read although the file was stored, e.g. a scanned page
            OCR could not read; each message names the file and the page.
    """

    source: str
    document_id: str
    status: FileStatus
    chunk_count: int = 0
    error: str | None = None
    error_type: str | None = None
    exception: Exception | None = field(default=None, compare=False, repr=False)
    warnings: tuple[str, ...] = ()


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
        skipped_files: The sources of the skipped files, where they were collected by name.
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
    skipped_files: list[str] = field(default_factory=list)


def summarise(results: list[FileResult], skipped: int | list[str], seconds: float) -> IngestSummary:
    """Count a batch's results into an ``IngestSummary`` (``skipped``: a count or the names)."""
    skipped_files = skipped if isinstance(skipped, list) else []
    chunks = sum(r.chunk_count for r in results if r.status in ("created", "replaced"))
    return IngestSummary(
        files=len(results),
        created=sum(r.status == "created" for r in results),
        replaced=sum(r.status == "replaced" for r in results),
        unchanged=sum(r.status == "unchanged" for r in results),
        failed=[(r.source, r.error or "") for r in results if r.status == "failed"],
        chunks=chunks,
        seconds=seconds,
        chunks_per_second=chunks / seconds if seconds > 0 else 0.0,
        skipped=len(skipped) if isinstance(skipped, list) else skipped,
        results=results,
        skipped_files=skipped_files,
    )


def failed_result(source: str, document_id: str, exc: Exception) -> FileResult:
    """Report ``exc`` as the failure of one file (an ``IngestError``'s message as it is)."""
    message = exc.message if isinstance(exc, IngestError) else f"{source}: {exc}"
    return FileResult(source, document_id, "failed", 0, message, type(exc).__name__, exception=exc)


def file_sha256(path: Path) -> str:
    """Return the sha256 hex digest of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def content_version(path: Path, chunk_size: int, chunk_overlap: int) -> str:
    """Return what decides ``unchanged``: the sha256 of the chunking parameters and the bytes.

    The same bytes chunked with another size or overlap get another version, so re-ingesting
    them re-chunks the document. It is stored as the record's ``content_hash``.
    """
    digest = hashlib.sha256(f"{VERSION_SCHEME}:{chunk_size}:{chunk_overlap}\n".encode())
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def unchanged_results(
    store: VectorStore,
    files: Sequence[tuple[Path, str]],
    chunk_size: int,
    chunk_overlap: int,
    limits: LoadLimits,
) -> list[FileResult] | None:
    """Return ``unchanged`` results if every file is stored with these bytes, else None.

    This is the pipeline's own test (``content_version`` against the stored
    ``content_hash``, metadata kept), made without an embedder, so an ingest that would change
    nothing needs no model. Any file that is new, changed, unreadable or refused gives None:
    the caller then runs the pipeline, which reports it properly.
    """
    results: list[FileResult] = []
    for path, source in files:
        document_id = document_id_for(source)
        try:
            check_file(source, file_extension(path, source), path.stat().st_size, limits)
            version = content_version(path, chunk_size, chunk_overlap)
        except (IngestError, OSError):
            return None
        existing = store.get_document(document_id)
        if existing is None or existing.content_hash != version:
            return None
        results.append(FileResult(source, document_id, "unchanged", existing.chunk_count))
    return results


def _matches(patterns: Sequence[str], relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(relative, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def collect_files(
    paths: Iterable[Path], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[tuple[Path, str]], int]:
    """Expand files and folders into ``(path, source)`` pairs and a skipped count.

    See ``collect_files_named``, which also names the files skipped.
    """
    files, skipped = collect_files_named(paths, include, exclude)
    return files, len(skipped)


def collect_files_named(
    paths: Iterable[Path], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[tuple[Path, str]], list[str]]:
    """Expand files and folders into ``(path, source)`` pairs, sorted, and the files skipped.

    A file given directly has its name as source; a file found in a folder has its path
    relative to that folder (``library/json.html``). In folders, hidden entries and files of
    unsupported types are skipped. Globs match the source or the bare file name
    (``*.html``, ``library/*``); a file must match one ``include`` glob (if any) and no
    ``exclude`` glob. A path that does not exist is returned as is, to be reported failed.
    Skipped files are named by their source; hidden folders are not walked and not named.
    """
    found: list[tuple[Path, str]] = []
    skipped: list[str] = []
    for root in paths:
        if not root.is_dir():
            found.append((root, root.name))
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(folder) / name
                if name.startswith(".") or path.suffix.lower() not in LOADERS:
                    skipped.append(path.relative_to(root).as_posix())
                    continue
                found.append((path, path.relative_to(root).as_posix()))
    kept: list[tuple[Path, str]] = []
    for path, source in found:
        if (not include or _matches(include, source)) and not _matches(exclude, source):
            kept.append((path, source))
        else:
            skipped.append(source)
    return kept, skipped
