"""Slides (pptx), spreadsheets (xlsx) and e-books (epub): zip packages, bounded like docx.

Each archive is checked for zip bombs first (``check_zip``: declared and real uncompressed size
against ``max_decompressed_bytes``), and parsing is bounded by the parse-time clock; a
spreadsheet also by its number of cells (``max_sheet_cells``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import warnings
from collections.abc import Iterator
from typing import Any

from core.errors import FileTooLarge, UnreadableDocument
from ingest.base import Section
from ingest.limits import LoadContext
from ingest.office_loaders import check_zip
from ingest.tables import table_section
from ingest.textutil import SectionBuilder, normalize_text

_ZIP_MAGIC = b"PK\x03\x04"
_ROW_CHECK = 256


def _open_package(data: bytes, ctx: LoadContext, kind: str, app: str) -> None:
    """Refuse what is not a zip archive, or one that inflates past the bound."""
    if not data.startswith(_ZIP_MAGIC):
        raise UnreadableDocument(
            f"{ctx.name}: the file is not a {kind} file (not a zip archive); save it as .{kind} "
            f"from {app}, or give it the extension of its real type",
            {"file": ctx.name},
        )
    check_zip(data, ctx, kind)


def _damaged(ctx: LoadContext, kind: str, exc: Exception) -> UnreadableDocument:
    return UnreadableDocument(
        f"{ctx.name}: not a readable {kind} file ({exc}); re-save it as .{kind}",
        {"file": ctx.name},
    )


# -- pptx ----------------------------------------------------------------------------------


def _shapes(shapes: Any) -> Iterator[Any]:
    """Every shape of a slide, group shapes opened (iteratively), in order."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    stack = list(reversed(list(shapes)))
    while stack:
        shape = stack.pop()
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            stack.extend(reversed(list(shape.shapes)))
        else:
            yield shape


def _slide_sections(slide: Any, number: int) -> list[Section]:
    """One slide: its title the heading, its text and tables, its speaker notes."""
    builder = SectionBuilder(page=number)
    title_shape = slide.shapes.title
    title = title_shape.text_frame.text if title_shape is not None else ""
    builder.heading(1, normalize_text(title) or f"Slide {number}")
    for shape in _shapes(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        if shape.has_table:
            builder.table([[cell.text for cell in row.cells] for row in shape.table.rows])
        elif shape.has_text_frame:
            builder.add(shape.text_frame.text + "\n\n")
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        if notes is not None and notes.text.strip():
            builder.heading(2, "Speaker notes")
            builder.add(notes.text)
    builder.flush()
    return builder.sections


def load_pptx(data: bytes, ctx: LoadContext) -> list[Section]:
    """Load a PowerPoint deck: one heading per slide (its title), notes under "Speaker notes".

    Each section's ``page`` is its slide number; tables become table sections.

    Raises:
        UnreadableDocument: not a zip archive, not a deck, or damaged.
        FileTooLarge: the archive inflates past ``max_decompressed_bytes``, or parsing took
            too long.
    """
    _open_package(data, ctx, "pptx", "PowerPoint")
    from pptx import Presentation

    try:
        deck = Presentation(io.BytesIO(data))
    except Exception as exc:  # python-pptx raises KeyError, ValueError, PackageNotFoundError...
        raise _damaged(ctx, "pptx", exc) from exc
    sections: list[Section] = []
    for number, slide in enumerate(deck.slides, start=1):
        ctx.deadline.check()
        sections.extend(_slide_sections(slide, number))
    return sections


# -- xlsx ----------------------------------------------------------------------------------


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _sheet_rows(sheet: Any, ctx: LoadContext, seen: int) -> tuple[list[list[str]], int]:
    """Read a sheet's rows as text, counting every cell visited against the bound."""
    limit = ctx.limits.max_sheet_cells
    rows: list[list[str]] = []
    for count, row in enumerate(sheet.iter_rows(values_only=True)):
        if count % _ROW_CHECK == 0:
            ctx.deadline.check()
        seen += len(row)
        if seen > limit:
            raise FileTooLarge(
                f"{ctx.name}: the spreadsheet has more than {limit} cells; split it, delete "
                "unused rows and columns, or raise RAG_INGEST__MAX_SHEET_CELLS",
                {"file": ctx.name, "max_sheet_cells": limit},
            )
        rows.append([_cell_text(value) for value in row])
    width = max((i + 1 for row in rows for i, text in enumerate(row) if text), default=0)
    return [row[:width] for row in rows], seen


def load_xlsx(data: bytes, ctx: LoadContext) -> list[Section]:
    """Load an Excel workbook: each sheet a table section under the sheet's name.

    The first non-empty row of a sheet is its header; formulas are read as the values Excel
    last computed (cached in the file); a formula never computed reads as empty.

    Raises:
        UnreadableDocument: not a zip archive, not a workbook, or damaged.
        FileTooLarge: the archive inflates past ``max_decompressed_bytes``, the sheets hold
            more than ``max_sheet_cells`` cells, or parsing took too long.
    """
    _open_package(data, ctx, "xlsx", "Excel")
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises InvalidFileException, KeyError, ValueError...
        raise _damaged(ctx, "xlsx", exc) from exc
    sections: list[Section] = []
    seen = 0
    try:
        for sheet in workbook.worksheets:
            rows, seen = _sheet_rows(sheet, ctx, seen)
            section = table_section(rows, heading_path=(str(sheet.title),))
            if section is not None:
                sections.append(section)
    except (FileTooLarge, UnreadableDocument):
        raise
    except Exception as exc:  # a damaged sheet part
        raise _damaged(ctx, "xlsx", exc) from exc
    finally:
        workbook.close()
    return sections


# -- epub ----------------------------------------------------------------------------------


def load_epub(data: bytes, ctx: LoadContext) -> list[Section]:
    """Load an e-book: its chapters in reading order, each split at its headings.

    Every heading path starts with the book's title; a chapter without an ``h1`` is headed
    by its own ``<title>`` (see ``ingest.html_loader``).

    Raises:
        UnreadableDocument: not a zip archive, not an epub, or damaged.
        FileTooLarge: the archive inflates past ``max_decompressed_bytes``, or parsing took
            too long.
    """
    _open_package(data, ctx, "epub", "your e-book editor")
    import ebooklib
    from bs4 import XMLParsedAsHTMLWarning
    from ebooklib import epub

    from ingest.html_loader import load_html

    try:
        book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": True})
    except Exception as exc:  # ebooklib raises EpubException, KeyError, XML errors...
        raise _damaged(ctx, "epub", exc) from exc
    titles = book.get_metadata("DC", "title")
    root = (normalize_text(str(titles[0][0])),) if titles and titles[0][0] else ()
    sections: list[Section] = []
    for item_id, _linear in book.spine:
        ctx.deadline.check()
        item = book.get_item_with_id(item_id)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        with warnings.catch_warnings():  # chapters are XHTML; lxml's HTML parser reads them
            warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
            chapter = load_html(item.get_content(), ctx)
        for section in chapter:
            path = root + section.heading_path
            sections.append(dataclasses.replace(section, heading_path=path))
    return sections
