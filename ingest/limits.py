"""Bounds on loading one file: size, pages, parse time, decompressed size."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from core.errors import FileTooLarge

_MB = 1_000_000


class _IngestLimitSettings(Protocol):
    """The fields of ``app.settings.IngestSettings`` that bound loading."""

    max_file_mb: float
    max_pdf_pages: int
    max_parse_seconds: float
    max_decompressed_mb: float


@dataclass(frozen=True)
class LoadLimits:
    """Bounds applied while loading a file; exceeding one raises ``FileTooLarge``.

    Attributes:
        max_file_bytes: Largest file accepted, in bytes.
        max_pdf_pages: PDFs with more pages are refused.
        max_parse_seconds: Parsing one file may take this long (checked between pages,
            paragraphs or records, so one slow library call can overrun it).
        max_decompressed_bytes: Largest total uncompressed size of a docx (zip) file.
    """

    max_file_bytes: int = 50 * _MB
    max_pdf_pages: int = 2000
    max_parse_seconds: float = 120.0
    max_decompressed_bytes: int = 200 * _MB

    @classmethod
    def from_settings(cls, settings: _IngestLimitSettings) -> LoadLimits:
        """Build the limits from ``IngestSettings`` (sizes there are in MB of 10^6 bytes)."""
        return cls(
            max_file_bytes=int(settings.max_file_mb * _MB),
            max_pdf_pages=settings.max_pdf_pages,
            max_parse_seconds=settings.max_parse_seconds,
            max_decompressed_bytes=int(settings.max_decompressed_mb * _MB),
        )


class Deadline:
    """A cooperative parse-time bound: loaders call ``check`` between units of work.

    A single slow library call (one huge PDF page) is not interrupted; the bound is enforced
    at the next check.
    """

    def __init__(self, seconds: float, name: str) -> None:
        """Start the clock for ``name``; it may be parsed for ``seconds``."""
        self.seconds = seconds
        self.name = name
        self._end = time.monotonic() + seconds

    def check(self) -> None:
        """Raise ``FileTooLarge`` if the time is up.

        Raises:
            FileTooLarge: parsing has taken longer than the bound.
        """
        if time.monotonic() > self._end:
            raise FileTooLarge(
                f"{self.name}: parsing took longer than {self.seconds:g} s; split the file into "
                "smaller ones or raise RAG_INGEST__MAX_PARSE_SECONDS",
                {"file": self.name, "max_parse_seconds": self.seconds},
            )


@dataclass(frozen=True)
class LoadContext:
    """What a loader gets besides the bytes: the file's name, the limits and the clock."""

    name: str
    limits: LoadLimits
    deadline: Deadline
