"""Bounds on loading one file: size, pages, parse time, decompressed size."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from core.errors import FileTooLarge
from ingest.ocr import OcrOptions

_MB = 1_000_000


class _IngestLimitSettings(Protocol):
    """The fields of ``app.settings.IngestSettings`` that bound loading."""

    max_file_mb: float
    max_pdf_pages: int
    max_parse_seconds: float
    max_decompressed_mb: float
    max_sheet_cells: int
    ocr: bool
    ocr_dpi: int
    ocr_max_megapixels: float
    ocr_page_seconds: float
    ocr_language: str
    ocr_min_text_chars: int
    ocr_min_confidence: float


@dataclass(frozen=True)
class LoadLimits:
    """Bounds applied while loading a file; exceeding one raises ``FileTooLarge``.

    Attributes:
        max_file_bytes: Largest file accepted, in bytes.
        max_pdf_pages: PDFs with more pages are refused.
        max_parse_seconds: Parsing one file may take this long (checked between pages,
            paragraphs or records, so one slow library call can overrun it).
        max_decompressed_bytes: Largest total uncompressed size of a docx, pptx, xlsx or
            epub (zip) file.
        max_sheet_cells: Spreadsheets with more non-empty cells are refused.
        ocr: Whether and how pages without a text layer and image files are OCR'd.
    """

    max_file_bytes: int = 50 * _MB
    max_pdf_pages: int = 2000
    max_parse_seconds: float = 120.0
    max_decompressed_bytes: int = 200 * _MB
    max_sheet_cells: int = 1_000_000
    ocr: OcrOptions = field(default_factory=OcrOptions)

    @classmethod
    def from_settings(cls, settings: _IngestLimitSettings) -> LoadLimits:
        """Build the limits from ``IngestSettings`` (sizes there are in MB of 10^6 bytes)."""
        return cls(
            max_file_bytes=int(settings.max_file_mb * _MB),
            max_pdf_pages=settings.max_pdf_pages,
            max_parse_seconds=settings.max_parse_seconds,
            max_decompressed_bytes=int(settings.max_decompressed_mb * _MB),
            max_sheet_cells=settings.max_sheet_cells,
            ocr=OcrOptions(
                enabled=settings.ocr,
                dpi=settings.ocr_dpi,
                max_pixels=int(settings.ocr_max_megapixels * _MB),
                page_seconds=settings.ocr_page_seconds,
                language=settings.ocr_language,
                min_text_chars=settings.ocr_min_text_chars,
                min_confidence=settings.ocr_min_confidence,
            ),
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
    """What a loader gets besides the bytes: the file's name, the limits and the clock.

    Attributes:
        name: The file's name, for messages.
        limits: The bounds.
        deadline: The parse-time clock.
        warnings: What a loader could not read but did not fail the file for (an unreadable
            scanned page); each names the file and the page. They end up in the file's result.
    """

    name: str
    limits: LoadLimits
    deadline: Deadline
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        """Record a warning about this file (the message gets the file's name in front)."""
        self.warnings.append(f"{self.name}: {message}")
