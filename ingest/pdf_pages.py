"""What a PDF page becomes besides pypdf's text: tables (pdfplumber) and OCR (pypdfium2).

``PdfPages.sections`` takes the text layer pypdf extracted from a page and returns the page's
sections: a page with (almost) no text layer is OCR'd; a page with ruled tables is read with
pdfplumber, its tables as table sections (``ingest.tables``) between the text above and below
them. Both libraries open the document lazily, only when a page needs them.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from ingest.base import Section
from ingest.limits import LoadContext
from ingest.scan_loaders import PdfPageRenderer
from ingest.tables import table_section
from ingest.textutil import normalize_text

logger = logging.getLogger(__name__)

PDF_TABLES = True
"""Look for ruled tables (pdfplumber) on pages that draw paths."""

MIN_TABLE_COLUMNS = 2
"""Fewest columns a ruled box needs to be read as a table: one column is a framed text (a code
sample, a note), read as text."""


class PdfPages:
    """One PDF's pages turned into sections; call ``close`` when done."""

    def __init__(self, data: bytes, ctx: LoadContext, text_engine: str = "pypdf") -> None:
        """Keep the PDF's bytes and the load context.

        ``text_engine`` (``pypdf`` or ``pdfium``) reads the text beside tables on ruled pages.
        """
        self._data = data
        self._ctx = ctx
        self._text_engine = text_engine
        self._renderer = PdfPageRenderer(data, ctx)
        self._plumber: Any = None

    def text(self, index: int) -> str | None:
        """Page ``index``'s text layer read by pdfium (None if pdfium cannot read it)."""
        return self._renderer.text(index)

    def sections(self, index: int, text: str) -> list[Section]:
        """Return the sections of page ``index`` (0-based) whose text layer is ``text``."""
        ocr = self._ctx.limits.ocr
        page = index + 1
        if len(text.strip()) < ocr.min_text_chars:
            if not ocr.enabled:
                if not text.strip():
                    self._ctx.warn(
                        f"page {page} has no text layer and OCR is off (RAG_INGEST__OCR); "
                        "it was left out"
                    )
                return [Section(normalize_text(text), page=page)]
            section = self._renderer.ocr(index)
            if section is not None:
                return [section]
            return [Section(normalize_text(text), page=page)]
        try:
            return self._with_tables(index, text)
        except Exception:  # pdfminer fails on some pages pypdf reads; keep pypdf's text
            logger.warning("%s: page %d: table detection failed", self._ctx.name, index + 1)
            return [Section(normalize_text(text), page=index + 1)]

    def _with_tables(self, index: int, text: str) -> list[Section]:
        if not PDF_TABLES or not self._renderer.has_rulings(index):
            return [Section(normalize_text(text), page=index + 1)]
        import pdfplumber

        if self._plumber is None:
            self._plumber = pdfplumber.open(io.BytesIO(self._data))
        page = self._plumber.pages[index]
        try:
            found = sorted(page.find_tables(), key=lambda t: t.bbox[1])
            tables = [(t.bbox, t.extract()) for t in found]
        finally:
            page.flush_cache()
        # A ruled box of one column frames text (a code sample, a note): it is no table.
        tables = [t for t in tables if max(map(len, t[1]), default=0) >= MIN_TABLE_COLUMNS]
        if not tables:
            return [Section(normalize_text(text), page=index + 1)]
        return self._table_page(page, tables, index)

    def _band_text(self, page: Any, index: int, top: float, bottom: float, text_only: Any) -> str:
        """Text across the page between ``top`` and ``bottom`` (pdfplumber's coordinates)."""
        if self._text_engine == "pdfium":
            found = self._renderer.text(index, (top, bottom))
            if found is not None:
                return normalize_text(found)
        band = text_only.crop((0, top, page.width, bottom), strict=False)
        return normalize_text(band.extract_text() or "")

    def _table_page(self, page: Any, tables: list[Any], index: int) -> list[Section]:
        """The text between the tables (outside them), and each table, top to bottom."""
        number = index + 1
        boxes = [bbox for bbox, _ in tables]

        def outside(obj: dict[str, Any]) -> bool:
            x = (obj["x0"] + obj["x1"]) / 2
            y = (obj["top"] + obj["bottom"]) / 2
            return not any(x0 <= x <= x1 and top <= y <= bottom for x0, top, x1, bottom in boxes)

        text_only = page.filter(outside)
        sections: list[Section] = []
        top = 0.0
        for table in [*tables, None]:
            bottom = page.height if table is None else table[0][1]
            if bottom > top:
                band_text = self._band_text(page, index, top, bottom, text_only)
                if band_text:
                    sections.append(Section(band_text, page=number))
            if table is not None:
                rows = [[cell or "" for cell in row] for row in table[1]]
                section = table_section(rows, page=number)
                if section is not None:
                    sections.append(section)
                top = max(top, table[0][3])
        return sections

    def close(self) -> None:
        """Release the documents opened for tables and OCR."""
        self._renderer.close()
        if self._plumber is not None:
            self._plumber.close()
            self._plumber = None
