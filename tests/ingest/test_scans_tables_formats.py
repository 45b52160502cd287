"""Scans (OCR), tables, slides, spreadsheets and e-books, read from files the tests make."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import EmptyDocument, FileTooLarge, UnreadableDocument, UnsupportedFileType
from ingest.chunking import chunk_document, document_id_for
from ingest.limits import LoadLimits
from ingest.loaders import load_bytes
from ingest.ocr import OcrOptions
from ingest.pipeline import IngestPipeline
from tests.fakes import HashEmbedder
from tests.ingest.documents import (
    MOUNTAINS,
    SENTENCE,
    image_bytes,
    make_epub,
    make_pptx,
    make_xlsx,
    sentence_image,
    table_docx,
    table_html,
    table_pdf,
    with_bomb,
)
from tests.ingest.files import encrypt_pdf, make_pdf
from vectorstores.memory import MemoryStore


def words(text: str) -> list[str]:
    return [w.strip(".,").lower() for w in text.split()]


# -- OCR -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt", "options"),
    [
        ("note.png", "PNG", {}),
        ("note.jpg", "JPEG", {"quality": 90}),
        ("note.tiff", "TIFF", {}),
        ("scan.pdf", "PDF", {"resolution": 150}),
    ],
)
def test_a_sentence_in_an_image_is_read_by_ocr(
    limits: LoadLimits, name: str, fmt: str, options: dict[str, object]
) -> None:
    data = image_bytes(sentence_image(), fmt, **options)
    doc = load_bytes(data, name, limits)
    assert [words(s.text) for s in doc.sections] == [words(SENTENCE)]
    confidence = doc.sections[0].ocr_confidence
    assert confidence is not None
    assert 40 <= confidence <= 100
    assert doc.warnings == []


def test_ocr_chunks_say_so_with_their_confidence(limits: LoadLimits) -> None:
    doc = load_bytes(image_bytes(sentence_image(), "PDF"), "scan.pdf", limits)
    [chunk] = chunk_document(
        doc, document_id_for("scan.pdf"), HashEmbedder().chunk_tokenizer, chunk_size=64,
        chunk_overlap=8,
    )  # fmt: skip
    assert chunk.metadata["ocr"] is True
    assert chunk.metadata["ocr_confidence"] == doc.sections[0].ocr_confidence
    assert chunk.metadata["page"] == 1


def test_a_pdf_with_a_text_layer_is_not_ocrd(limits: LoadLimits) -> None:
    doc = load_bytes(make_pdf(["Sourdough bread needs a starter fed every day."]), "a.pdf", limits)
    assert doc.sections[0].ocr_confidence is None


def test_an_unreadable_scanned_page_is_reported_not_silently_empty(
    tmp_path: Path, limits: LoadLimits
) -> None:
    from PIL import Image

    readable = sentence_image().convert("RGB")  # type: ignore[attr-defined]
    blank = Image.new("RGB", readable.size, "white")
    path = tmp_path / "scan.pdf"
    path.write_bytes(image_bytes(readable, "PDF", save_all=True, append_images=[blank]))
    embedder = HashEmbedder()
    store = MemoryStore("t", embedder.model_name, embedder.dimension)
    pipeline = IngestPipeline(embedder, chunk_size=64, chunk_overlap=8, limits=limits)
    result = pipeline.ingest_file(store, path)
    assert result.status == "created"
    assert result.warnings == ("scan.pdf: page 2 could not be read: OCR found no text on it "
                               "(blank, a photo, or too blurred)",)  # fmt: skip
    [chunk] = store.get_chunks(result.document_id)
    assert words(chunk.text) == words(SENTENCE)


def test_an_image_with_nothing_to_read_is_refused_with_the_reason(limits: LoadLimits) -> None:
    from PIL import Image

    data = image_bytes(Image.new("L", (600, 200), 255), "PNG")
    with pytest.raises(EmptyDocument, match="blank.png: no text could be extracted: the image"):
        load_bytes(data, "blank.png", limits)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("truncated.png", lambda png: png[: len(png) // 2]),
        ("encrypted.png", lambda png: bytes(b ^ 0x5A for b in png)),
        ("random.jpg", lambda png: b"\x00\x17" * 400),
        ("misnamed.tiff", lambda png: png),
    ],
)
def test_a_corrupt_or_encrypted_image_is_refused(
    limits: LoadLimits, name: str, make: Callable[[bytes], bytes]
) -> None:
    data = make(image_bytes(sentence_image(), "PNG"))
    with pytest.raises(UnreadableDocument, match=name):
        load_bytes(data, name, limits)


def test_an_encrypted_scanned_pdf_is_refused(limits: LoadLimits) -> None:
    data = encrypt_pdf(image_bytes(sentence_image(), "PDF"), "secret")
    with pytest.raises(UnreadableDocument, match="encrypted PDF"):
        load_bytes(data, "locked.pdf", limits)


def test_an_image_over_the_pixel_bound_is_refused(limits: LoadLimits) -> None:
    small = dataclasses.replace(limits, ocr=OcrOptions(max_pixels=10_000))
    with pytest.raises(FileTooLarge, match="RAG_INGEST__OCR_MAX_MEGAPIXELS"):
        load_bytes(image_bytes(sentence_image(), "PNG"), "big.png", small)


def test_a_pdf_page_over_the_pixel_bound_is_rendered_smaller(limits: LoadLimits) -> None:
    # At 300 dpi the page would be ~3.3 megapixels; the bound makes it render at ~1.2.
    bounded = dataclasses.replace(limits, ocr=OcrOptions(max_pixels=1_200_000))
    data = image_bytes(sentence_image(), "PDF", resolution=100)
    assert words(load_bytes(data, "scan.pdf", bounded).sections[0].text) == words(SENTENCE)


def test_ocr_switched_off(limits: LoadLimits) -> None:
    off = dataclasses.replace(limits, ocr=OcrOptions(enabled=False))
    with pytest.raises(UnsupportedFileType, match="RAG_INGEST__OCR=true"):
        load_bytes(image_bytes(sentence_image(), "PNG"), "note.png", off)
    with pytest.raises(EmptyDocument, match="no text layer and OCR is off"):
        load_bytes(image_bytes(sentence_image(), "PDF"), "scan.pdf", off)


# -- tables --------------------------------------------------------------------------------

TABLE_FILES = [("mountains.docx", table_docx), ("mountains.html", table_html)]
TABLE_FILES.append(("mountains.pdf", table_pdf))


@pytest.mark.parametrize(("name", "make"), TABLE_FILES)
def test_a_table_is_chunked_between_rows_with_its_header_on_every_chunk(
    limits: LoadLimits, name: str, make: Callable[[], bytes]
) -> None:
    doc = load_bytes(make(), name, limits)
    chunks = chunk_document(
        doc, document_id_for(name), HashEmbedder().chunk_tokenizer, chunk_size=40,
        chunk_overlap=8,
    )  # fmt: skip
    header = "| Mountain | Country | Height in metres | First ascent |\n| --- | --- | --- | --- |"
    table_chunks = [c for c in chunks if c.metadata.get("table")]
    assert len(table_chunks) >= 3  # the table spans several chunks
    rows_seen: list[str] = []
    for chunk in table_chunks:
        assert chunk.text.startswith(header + "\n")
        rows_seen.extend(chunk.text.removeprefix(header + "\n").split("\n"))
    assert rows_seen == ["| " + " | ".join(row) + " |" for row in MOUNTAINS[1:]]
    prose = " ".join(c.text for c in chunks if not c.metadata.get("table"))
    assert "The highest mountains of each land" in prose


def test_a_row_longer_than_a_chunk_is_the_only_one_split(limits: LoadLimits) -> None:
    rows = [["Name", "Notes"], ["short", "one"], ["long", " ".join(["word"] * 80)], ["tail", "x"]]
    doc = load_bytes(table_html(rows), "long.html", limits)
    chunks = [
        c
        for c in chunk_document(
            doc, "d", HashEmbedder().chunk_tokenizer, chunk_size=40, chunk_overlap=8
        )
        if c.metadata.get("table")
    ]
    assert all(c.text.startswith("| Name | Notes |\n| --- | --- |\n") for c in chunks)
    assert "| short | one |" in chunks[0].text
    assert chunks[-1].text.endswith("| tail | x |")
    assert len(chunks) >= 3


# -- pptx, xlsx, epub ----------------------------------------------------------------------


def test_pptx_slide_titles_are_headings_and_notes_are_kept(limits: LoadLimits) -> None:
    doc = load_bytes(make_pptx(), "sales.pptx", limits)
    assert [(s.heading_path, s.page, s.text) for s in doc.sections] == [
        (("Quarterly Kite Sales",), 1, "Delta kites sold twice as many as box kites."),
        (("Quarterly Kite Sales", "Speaker notes"), 1, "Mention the windy spring in the north."),
        (("Prices",), 2, "| Kite | Price |\n| --- | --- |\n| Delta | 40 EUR |\n| Box | 55 EUR |"),
    ]


def test_xlsx_sheets_are_tables_with_formulas_as_cached_values(limits: LoadLimits) -> None:
    doc = load_bytes(make_xlsx("42"), "stock.xlsx", limits)
    assert [(s.heading_path, s.text) for s in doc.sections] == [
        (("Stock",), "| Kite | Colour | In stock |\n| --- | --- | --- |\n| Delta | red | 12 |\n"
                     "| Box | blue | 3 |"),
        (("Totals",), "| Item | Count | Double |\n| --- | --- | --- |\n| Delta | 21 | 42 |"),
    ]  # fmt: skip
    assert all(s.table_header for s in doc.sections)


def test_xlsx_over_the_cell_bound_is_refused(limits: LoadLimits) -> None:
    small = dataclasses.replace(limits, max_sheet_cells=10)
    with pytest.raises(FileTooLarge, match="more than 10 cells.*RAG_INGEST__MAX_SHEET_CELLS"):
        load_bytes(make_xlsx(), "stock.xlsx", small)


def test_epub_chapters_are_headings_under_the_book_title(limits: LoadLimits) -> None:
    doc = load_bytes(make_epub(), "kites.epub", limits)
    assert [(s.heading_path, s.text) for s in doc.sections] == [
        (("The Kite Book", "Building a Kite"),
         "Cut the spars from bamboo and tie them with waxed string."),
        (("The Kite Book", "Flying Safely"),
         "Stay clear of power lines and airports when you fly."),
    ]  # fmt: skip


PACKAGES: list[tuple[str, Callable[[], bytes]]] = [
    ("deck.pptx", make_pptx),
    ("book.xlsx", make_xlsx),
    ("novel.epub", make_epub),
]


@pytest.mark.parametrize(("name", "make"), PACKAGES)
def test_a_zip_bomb_of_each_kind_is_refused(
    limits: LoadLimits, name: str, make: Callable[[], bytes]
) -> None:
    bomb = with_bomb(make(), limits.max_decompressed_bytes + 1)
    assert len(bomb) < limits.max_decompressed_bytes // 20  # it deflates to almost nothing
    kind = name.rsplit(".", 1)[1]
    with pytest.raises(FileTooLarge, match=f"the {kind} archive .* limit of 1.0 MB uncompressed"):
        load_bytes(bomb, name, limits)


@pytest.mark.parametrize(("name", "make"), PACKAGES)
def test_a_package_that_is_not_a_zip_or_is_damaged_is_refused(
    limits: LoadLimits, name: str, make: Callable[[], bytes]
) -> None:
    with pytest.raises(UnreadableDocument, match="not a zip archive"):
        load_bytes(b"plain text, not a package", name, limits)
    data = make()
    with pytest.raises(UnreadableDocument, match=name):
        load_bytes(data[: len(data) // 2], name, limits)


def test_a_page_over_the_ocr_time_bound_is_reported(limits: LoadLimits) -> None:
    # One millisecond: Tesseract cannot even start in that time, so the page always times out.
    hurried = dataclasses.replace(limits, ocr=OcrOptions(page_seconds=0.001))
    with pytest.raises(EmptyDocument, match="OCR took longer than 0.001 s"):
        load_bytes(image_bytes(sentence_image(), "PNG"), "slow.png", hurried)
