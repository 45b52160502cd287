"""Optical character recognition of page images, offline, with Tesseract.

Tesseract 5 (Debian's ``tesseract-ocr`` and ``tesseract-ocr-eng``) runs through pytesseract,
one subprocess per page, so a page is bounded in time by killing that process
(``timeout_seconds``) and in pixels by the caller (``fit_pixels``, ``check_pixels``). It was
chosen over RapidOCR by ``bench/bench_ocr.py`` (see ``bench/results/ocr.md``): on a page of
real English prose it reads with a lower character error rate, it keeps the spaces between
words, and it needs no opencv or onnxruntime models in the server's process.

A page OCR cannot read (no words, a confidence under the bound, a timeout, Tesseract missing)
is an ``OcrFailure`` carrying the reason; the loaders turn it into a warning in the file's
result, never into silently empty text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import FileTooLarge

if TYPE_CHECKING:
    from PIL.Image import Image

_MEGA = 1_000_000


@dataclass(frozen=True)
class OcrText:
    """What OCR read from one page.

    Attributes:
        text: Lines joined by newlines, paragraphs by blank lines.
        confidence: Mean word confidence, 0 to 100.
        words: Words read.
    """

    text: str
    confidence: float
    words: int


class OcrFailure(Exception):
    """OCR could not read a page; ``reason`` says why, fit to show a user."""

    def __init__(self, reason: str) -> None:
        """Keep ``reason`` as the message."""
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OcrOptions:
    """How loaders run OCR (built from ``IngestSettings``; see ``LoadLimits.ocr``).

    Attributes:
        enabled: OCR pages without a text layer and image files at all.
        dpi: Resolution PDF pages are rendered at for OCR.
        max_pixels: Largest image OCR'd: PDF pages are rendered smaller to fit, image files
            over it are refused.
        page_seconds: Longest OCR of one page; the page is reported unreadable after it.
        language: Tesseract language(s), e.g. ``eng`` or ``eng+deu``.
        min_text_chars: A PDF page whose text layer has fewer characters is OCR'd.
        min_confidence: A page read with a lower mean word confidence (0-100) is reported
            unreadable and its text left out.
    """

    enabled: bool = True
    dpi: int = 300
    max_pixels: int = 40 * _MEGA
    page_seconds: float = 60.0
    language: str = "eng"
    min_text_chars: int = 20
    min_confidence: float = 40.0


class TesseractEngine:
    """Runs Tesseract (LSTM engine, automatic page segmentation) on one image at a time."""

    def __init__(self, timeout_seconds: float = 60.0, language: str = "eng") -> None:
        """Read ``language`` with at most ``timeout_seconds`` per image."""
        self.timeout_seconds = timeout_seconds
        self.language = language

    def read(self, image: Image) -> OcrText:
        """Read the text of ``image``.

        Raises:
            OcrFailure: Tesseract is missing, fails, or takes longer than the timeout.
        """
        import pytesseract

        try:
            data: dict[str, list[Any]] = pytesseract.image_to_data(
                image,
                lang=self.language,
                config="--oem 1 --psm 3",
                timeout=self.timeout_seconds,
                output_type=pytesseract.Output.DICT,
            )
        except pytesseract.TesseractNotFoundError as exc:
            raise OcrFailure(
                "Tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-eng)"
            ) from exc
        except pytesseract.TesseractError as exc:
            raise OcrFailure(f"Tesseract failed ({exc.message or exc})") from exc
        except RuntimeError as exc:  # pytesseract's timeout
            raise OcrFailure(
                f"OCR took longer than {self.timeout_seconds:g} s; raise "
                "RAG_INGEST__OCR_PAGE_SECONDS or scan the page at a lower resolution"
            ) from exc
        return _assemble(data)


def _assemble(data: dict[str, list[Any]]) -> OcrText:
    """Join Tesseract's words into lines and paragraphs; average their confidences."""
    paragraphs: list[list[str]] = []
    lines: dict[tuple[int, int, int], list[str]] = {}
    confidences: list[float] = []
    for i, word in enumerate(data["text"]):
        word = str(word).strip()
        confidence = float(data["conf"][i])
        if not word or confidence < 0:
            continue
        confidences.append(confidence)
        key = (int(data["block_num"][i]), int(data["par_num"][i]), int(data["line_num"][i]))
        lines.setdefault(key, []).append(word)
    previous: tuple[int, int] | None = None
    for (block, paragraph, _), words in lines.items():
        if (block, paragraph) != previous:
            paragraphs.append([])
            previous = (block, paragraph)
        paragraphs[-1].append(" ".join(words))
    text = "\n\n".join("\n".join(p) for p in paragraphs)
    mean = sum(confidences) / len(confidences) if confidences else 0.0
    return OcrText(text=text, confidence=round(mean, 1), words=len(confidences))


def read_page(image: Image, options: OcrOptions) -> OcrText:
    """OCR one page image and judge whether it was read.

    Raises:
        OcrFailure: nothing was read, the confidence is under ``options.min_confidence``, or
            the engine failed (see ``TesseractEngine.read``).
    """
    result = TesseractEngine(options.page_seconds, options.language).read(image)
    if not result.words:
        raise OcrFailure("OCR found no text on it (blank, a photo, or too blurred)")
    if result.confidence < options.min_confidence:
        raise OcrFailure(
            f"OCR read it with a mean confidence of {result.confidence:g}, under "
            f"{options.min_confidence:g}; scan it again at 300 dpi, straight and sharp"
        )
    return result


def render_scale(width_pt: float, height_pt: float, options: OcrOptions) -> float:
    """Return the PDF render scale for ``options.dpi``, lowered to fit ``max_pixels``."""
    scale = options.dpi / 72
    pixels = width_pt * scale * height_pt * scale
    if pixels > options.max_pixels:
        scale *= math.sqrt(options.max_pixels / pixels)
    return scale


def check_pixels(name: str, width: int, height: int, options: OcrOptions) -> None:
    """Refuse an image file larger than ``options.max_pixels`` before decoding it.

    Raises:
        FileTooLarge: the image has too many pixels.
    """
    if width * height > options.max_pixels:
        raise FileTooLarge(
            f"{name}: the image is {width}x{height} pixels ({width * height / _MEGA:.1f} "
            f"megapixels), over the OCR limit of {options.max_pixels / _MEGA:g}; scale it down "
            "(300 dpi is enough for text) or raise RAG_INGEST__OCR_MAX_MEGAPIXELS",
            {"file": name, "pixels": width * height, "max_pixels": options.max_pixels},
        )
