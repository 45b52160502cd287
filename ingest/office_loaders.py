"""PDF (pypdf) and Word (python-docx) loaders, with their bounds and content checks."""

from __future__ import annotations

import copy
import io
import re
import zipfile
from typing import Any

from core.errors import FileTooLarge, UnreadableDocument
from ingest.base import Section
from ingest.limits import LoadContext
from ingest.pdf_pages import PdfPages
from ingest.textutil import SectionBuilder

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)
_READ_BLOCK = 1 << 16


PDF_TEXT_ENGINE = "pdfium"
"""Reads a PDF page's text layer: ``pdfium`` (pypdf when pdfium cannot read the page) or
``pypdf``. pdfium keeps word spaces that pypdf drops in some PDFs (bench/results/
retrieval_variants.md); the benchmarks switch it to measure the difference."""


def _unreadable(ctx: LoadContext, reason: str, fix: str) -> UnreadableDocument:
    return UnreadableDocument(f"{ctx.name}: {reason}; {fix}", {"file": ctx.name})


def load_pdf(data: bytes, ctx: LoadContext) -> list[Section]:
    """Load a PDF as sections per page (``page`` is 1-based); see ``ingest.pdf_pages``.

    Pages without a text layer are OCR'd, ruled tables become table sections.

    An encrypted PDF is read only when it opens with the empty password (an owner password
    alone); otherwise it is refused.

    Raises:
        UnreadableDocument: not a PDF, corrupt, or encrypted.
        FileTooLarge: more pages than ``max_pdf_pages``, or parsing took too long.
    """
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    if not data.startswith(b"%PDF"):
        raise _unreadable(
            ctx,
            "the file is not a PDF (it does not start with %PDF)",
            "check that it is the right file, or give it the extension of its real type",
        )
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise _unreadable(ctx, "encrypted PDF", "remove the password and upload it again")
        page_count = len(reader.pages)
    except UnreadableDocument:
        raise
    except (FileNotDecryptedError, DependencyError) as exc:
        raise _unreadable(ctx, "encrypted PDF", "remove the password and upload it again") from exc
    except Exception as exc:  # pypdf raises assorted errors on damaged files
        raise _unreadable(ctx, f"the PDF is damaged ({exc})", "repair or re-export it") from exc
    if page_count == 0:
        raise _unreadable(ctx, "the PDF has no pages", "repair or re-export it")
    if page_count > ctx.limits.max_pdf_pages:
        raise FileTooLarge(
            f"{ctx.name}: the PDF has {page_count} pages, over the limit of "
            f"{ctx.limits.max_pdf_pages}; split it or raise RAG_INGEST__MAX_PDF_PAGES",
            {"file": ctx.name, "pages": page_count, "max_pdf_pages": ctx.limits.max_pdf_pages},
        )
    sections: list[Section] = []
    pages = PdfPages(data, ctx, PDF_TEXT_ENGINE)
    try:
        for number in range(page_count):
            ctx.deadline.check()
            text = pages.text(number) if PDF_TEXT_ENGINE == "pdfium" else None
            try:
                if text is None:
                    text = reader.pages[number].extract_text() or ""
            except Exception as exc:  # a damaged page stream
                raise _unreadable(
                    ctx,
                    f"page {number + 1} of the PDF is damaged ({exc})",
                    "repair or re-export it",
                ) from exc
            sections.extend(pages.sections(number, text))
    finally:
        pages.close()
    return sections


def check_zip(data: bytes, ctx: LoadContext, kind: str = "docx") -> None:
    """Refuse zip bombs: declared sizes over the bound, or entries inflating past it.

    Each entry is decompressed through a bounded stream that ignores the size its header
    declares, so a header that lies cannot make the real parse inflate more than the bound.
    """
    limit = ctx.limits.max_decompressed_bytes

    def too_large(what: str) -> FileTooLarge:
        return FileTooLarge(
            f"{ctx.name}: the {kind} archive {what} the limit of {limit / 1e6:.1f} MB "
            "uncompressed (a zip bomb?); raise RAG_INGEST__MAX_DECOMPRESSED_MB if it is genuine",
            {"file": ctx.name, "max_decompressed_bytes": limit},
        )

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
            declared = sum(info.file_size for info in entries)
            if declared > limit:
                raise too_large(f"declares {declared / 1e6:.1f} MB, over")
            total = 0
            for info in entries:
                ctx.deadline.check()
                # Read past a lying header. zipfile checks the CRC when it has delivered
                # file_size bytes; one block of margin makes the bound trip before that.
                bounded = copy.copy(info)
                bounded.file_size = limit - total + 1 + _READ_BLOCK
                with archive.open(bounded) as stream:
                    while block := stream.read(_READ_BLOCK):
                        total += len(block)
                        if total > limit:
                            raise too_large("inflates past")
    except FileTooLarge:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise _unreadable(
            ctx, f"the {kind} archive is damaged ({exc})", f"re-save it as .{kind}"
        ) from exc


def _docx_heading_level(paragraph: Any) -> int | None:
    style = paragraph.style
    if style is None:
        return None
    if style.name == "Title":
        return 0
    for name in (style.name or "", style.style_id or ""):
        match = _HEADING_STYLE.match(name.strip())
        if match:
            return int(match.group(1))
    return None


def load_docx(data: bytes, ctx: LoadContext) -> list[Section]:
    """Load a Word document; paragraphs in Heading (or Title) styles make the heading path.

    Tables become markdown table sections (``ingest.tables``), the first row the header.

    Raises:
        UnreadableDocument: not a zip archive, not a Word document, or damaged.
        FileTooLarge: the archive inflates past ``max_decompressed_bytes``.
    """
    if not data.startswith(b"PK\x03\x04"):
        raise _unreadable(
            ctx,
            "the file is not a Word document (not a zip archive)",
            "save it as .docx from Word, or give it the extension of its real type",
        )
    check_zip(data, ctx)
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises KeyError, ValueError, PackageNotFoundError...
        raise _unreadable(
            ctx, f"not a readable Word document ({exc})", "re-save it as .docx"
        ) from exc
    builder = SectionBuilder()
    for block in document.iter_inner_content():
        ctx.deadline.check()
        if isinstance(block, Table):
            builder.table([[cell.text for cell in row.cells] for row in block.rows])
            continue
        level = _docx_heading_level(block)
        if level is not None:
            builder.heading(level, block.text)
        else:
            builder.add(block.text + "\n\n")
    builder.flush()
    return builder.sections
