"""Scanned pages: image files (png, jpg, tiff) and PDF pages without a text layer, by OCR.

Pages that OCR cannot read are not failures of the file: each becomes a warning in the file's
result (``LoadContext.warn``), and a file none of whose pages can be read is refused as empty,
with those reasons in the message.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.errors import FileTooLarge, UnreadableDocument, UnsupportedFileType
from ingest.base import Section
from ingest.limits import LoadContext
from ingest.ocr import OcrFailure, check_pixels, read_page, render_scale
from ingest.textutil import normalize_text

_SOFT_HYPHEN_BREAK = re.compile("\ufffe[ \t]*(?:\r\n|\r|\n)?")

if TYPE_CHECKING:
    from PIL.Image import Image

IMAGE_KINDS: dict[str, tuple[str, tuple[bytes, ...]]] = {
    ".png": ("PNG", (b"\x89PNG\r\n\x1a\n",)),
    ".jpg": ("JPEG", (b"\xff\xd8\xff",)),
    ".jpeg": ("JPEG", (b"\xff\xd8\xff",)),
    ".tif": ("TIFF", (b"II*\x00", b"MM\x00*")),
    ".tiff": ("TIFF", (b"II*\x00", b"MM\x00*")),
}
"""Image extensions read by OCR: the format's name and the magic numbers its files start with."""


def ocr_section(image: Image, ctx: LoadContext, page: int | None, where: str) -> Section | None:
    """OCR one page image; a page that cannot be read is a warning and None.

    Args:
        image: The page.
        ctx: The load context (its OCR options, its warnings).
        page: The 1-based page number the section gets, or None.
        where: How the warning names the page (``"page 3"``, ``"the image"``).
    """
    try:
        result = read_page(image, ctx.limits.ocr)
    except OcrFailure as failure:
        ctx.warn(f"{where} could not be read: {failure.reason}")
        return None
    return Section(normalize_text(result.text), page=page, ocr_confidence=result.confidence)


def _open_image(data: bytes, ctx: LoadContext, kind: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise FileTooLarge(
            f"{ctx.name}: the image declares too many pixels ({exc}); scale it down",
            {"file": ctx.name},
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableDocument(
            f"{ctx.name}: the {kind} image is damaged or encrypted ({exc}); re-export it",
            {"file": ctx.name},
        ) from exc
    if image.format != kind:
        raise UnreadableDocument(
            f"{ctx.name}: the file is a {image.format} image, not {kind}; give it the "
            "extension of its real type",
            {"file": ctx.name},
        )
    check_pixels(ctx.name, image.width, image.height, ctx.limits.ocr)
    return image


def _image_pages(image: Any, ctx: LoadContext, kind: str) -> list[Section]:
    from PIL import ImageSequence

    frames = ImageSequence.Iterator(image)
    sections: list[Section] = []
    count = 0
    for count, frame in enumerate(frames, start=1):
        ctx.deadline.check()
        if count > ctx.limits.max_pdf_pages:
            raise FileTooLarge(
                f"{ctx.name}: the image has more than {ctx.limits.max_pdf_pages} pages; split "
                "it or raise RAG_INGEST__MAX_PDF_PAGES",
                {"file": ctx.name, "max_pdf_pages": ctx.limits.max_pdf_pages},
            )
        check_pixels(ctx.name, frame.width, frame.height, ctx.limits.ocr)
        try:
            page = frame.convert("L")
        except (OSError, ValueError) as exc:  # truncated or corrupt pixel data
            raise UnreadableDocument(
                f"{ctx.name}: the {kind} image is damaged ({exc}); re-export it",
                {"file": ctx.name},
            ) from exc
        paged = kind == "TIFF" and image.n_frames > 1
        where = f"page {count}" if paged else "the image"
        section = ocr_section(page, ctx, count if paged else None, where)
        if section is not None:
            sections.append(section)
    return sections


def image_loader(extension: str) -> Callable[[bytes, LoadContext], list[Section]]:
    """Return the loader of one image type: checks its magic number, then OCRs every page.

    The loader raises ``UnsupportedFileType`` when OCR is off, ``UnreadableDocument`` for a
    damaged, encrypted or misnamed image, ``FileTooLarge`` for one over the pixel bound.
    """
    kind, magics = IMAGE_KINDS[extension]

    def load(data: bytes, ctx: LoadContext) -> list[Section]:
        if not ctx.limits.ocr.enabled:
            raise UnsupportedFileType(
                f"{ctx.name}: image files are read by OCR, which is turned off; set "
                "RAG_INGEST__OCR=true, or upload the document as text or PDF",
                {"file": ctx.name, "extension": extension},
            )
        if not data.startswith(magics):
            raise UnreadableDocument(
                f"{ctx.name}: the file is not a {kind} image (its first bytes are not a {kind} "
                "signature; damaged or encrypted?); check that it is the right file",
                {"file": ctx.name},
            )
        image = _open_image(data, ctx, kind)
        try:
            return _image_pages(image, ctx, kind)
        finally:
            image.close()

    return load


def join_soft_hyphens(text: str) -> str:
    """Join the words pdfium marks as broken at a line end (U+FFFE, then the line break)."""
    return _SOFT_HYPHEN_BREAK.sub("", text).replace("\ufffe", "")


class PdfPageRenderer:
    """Renders PDF pages to images for OCR with pypdfium2, opening the document on first use."""

    def __init__(self, data: bytes, ctx: LoadContext) -> None:
        """Keep the PDF's bytes; nothing is parsed until ``ocr`` is called."""
        self._data = data
        self._ctx = ctx
        self._document: Any = None

    def has_rulings(self, index: int, at_least: int = 4) -> bool:
        """Whether page ``index`` draws at least ``at_least`` paths (lines, boxes).

        A ruled table is drawn with paths; a page without them has none, so the costly table
        search (pdfplumber lays out every character) is skipped for it.
        """
        import pypdfium2 as pdfium
        import pypdfium2.raw as pdfium_c

        try:
            if self._document is None:
                self._document = pdfium.PdfDocument(self._data)
            page = self._document[index]
            paths = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH], max_depth=2)
            return any(n >= at_least - 1 for n, _ in enumerate(paths))
        except pdfium.PdfiumError:
            return False

    def text(self, index: int, band: tuple[float, float] | None = None) -> str | None:
        """Page ``index``'s text layer as pdfium reads it, None if pdfium cannot read the page.

        ``band``: only the text between these two distances from the top of the page (points).

        pdfium keeps the spaces between words that pypdf drops on some PDFs (the Debian
        Reference: "Therearetwomethods"); its soft-hyphen marks (U+FFFE, a word broken at a
        line end) are joined back into the word.
        """
        import pypdfium2 as pdfium

        try:
            if self._document is None:
                self._document = pdfium.PdfDocument(self._data)
            page = self._document[index]
            textpage = page.get_textpage()
            try:
                if band is None:
                    text = str(textpage.get_text_range())
                else:
                    width, height = page.get_size()
                    text = str(
                        textpage.get_text_bounded(0, height - band[1], width, height - band[0])
                    )
            finally:
                textpage.close()
        except pdfium.PdfiumError:
            return None
        return join_soft_hyphens(text)

    def ocr(self, index: int) -> Section | None:
        """OCR page ``index`` (0-based); a page that cannot be read is a warning and None."""
        import pypdfium2 as pdfium

        where = f"page {index + 1}"
        try:
            if self._document is None:
                self._document = pdfium.PdfDocument(self._data)
            page = self._document[index]
            width, height = page.get_size()
            scale = render_scale(width, height, self._ctx.limits.ocr)
            image = page.render(scale=scale, grayscale=True).to_pil()
        except pdfium.PdfiumError as exc:
            self._ctx.warn(f"{where} could not be rendered for OCR ({exc})")
            return None
        return ocr_section(image, self._ctx, index + 1, where)

    def close(self) -> None:
        """Release pdfium's document."""
        if self._document is not None:
            self._document.close()
            self._document = None
