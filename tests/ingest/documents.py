"""Builders of the documents people have: scans, tables, slides, spreadsheets, e-books.

Every file is made here by the real library (Pillow, fpdf2, python-docx, python-pptx,
openpyxl, ebooklib), so the loaders read what those tools write.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
SENTENCE = "The lighthouse keeper feeds seven orange cats every morning."

MOUNTAINS = [
    ["Mountain", "Country", "Height in metres", "First ascent"],
    ["Everest", "Nepal", "8849", "1953"],
    ["Aconcagua", "Argentina", "6961", "1897"],
    ["Denali", "United States", "6190", "1913"],
    ["Kilimanjaro", "Tanzania", "5895", "1889"],
    ["Elbrus", "Russia", "5642", "1874"],
    ["Vinson", "Antarctica", "4892", "1966"],
    ["Puncak Jaya", "Indonesia", "4884", "1962"],
    ["Mont Blanc", "France", "4808", "1786"],
    ["Matterhorn", "Switzerland", "4478", "1865"],
    ["Olympus", "Greece", "2918", "1913"],
    ["Kosciuszko", "Australia", "2228", "1840"],
    ["Ben Nevis", "United Kingdom", "1345", "1771"],
]
"""A header and a dozen rows."""


def sentence_image(text: str = SENTENCE, size: int = 40) -> object:
    """A white image with ``text`` in black, as a scanner would deliver a line of print."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(FONT), size)
    width = int(ImageDraw.Draw(Image.new("L", (1, 1))).textlength(text, font=font)) + 80
    image = Image.new("L", (width, size * 4), 255)
    ImageDraw.Draw(image).text((40, size * 1.5), text, font=font, fill=0)
    return image


def image_bytes(image: object, fmt: str, **options: object) -> bytes:
    """Save a Pillow image in ``fmt`` (``PNG``, ``PDF``, ``TIFF``, ...)."""
    out = io.BytesIO()
    image.save(out, fmt, **options)  # type: ignore[attr-defined]
    return out.getvalue()


def table_docx(rows: list[list[str]] = MOUNTAINS) -> bytes:
    """A Word document: a heading, a paragraph, a table of ``rows``."""
    import docx

    document = docx.Document()
    document.add_heading("Mountains", 1)
    document.add_paragraph("The highest mountains of each land, with their first ascents.")
    table = document.add_table(rows=len(rows), cols=len(rows[0]))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def table_html(rows: list[list[str]] = MOUNTAINS) -> bytes:
    """An HTML page with a heading, a paragraph and a table (``th`` header in ``thead``)."""
    head = "".join(f"<th>{c}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:])
    return (
        "<html><head><title>Mountains</title></head><body><h1>Mountains</h1>"
        "<p>The highest mountains of each land, with their first ascents.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        "<p>Heights are rounded to the metre.</p></body></html>"
    ).encode()


def table_pdf(rows: list[list[str]] = MOUNTAINS) -> bytes:
    """A PDF with a paragraph, a ruled table of ``rows`` (fpdf2), and a closing line."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "The highest mountains of each land, with their first ascents.")
    with pdf.table() as table:
        for row in rows:
            cells = table.row()
            for text in row:
                cells.cell(text)
    pdf.multi_cell(0, 6, "Heights are rounded to the metre.")
    return bytes(pdf.output())


def make_pptx() -> bytes:
    """A deck of two slides (titles, a bullet, a table) with speaker notes on the first."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Quarterly Kite Sales"
    first.placeholders[1].text = "Delta kites sold twice as many as box kites."
    first.notes_slide.notes_text_frame.text = "Mention the windy spring in the north."
    second = deck.slides.add_slide(deck.slide_layouts[5])
    second.shapes.title.text = "Prices"
    shape = second.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2))
    for r, row in enumerate([["Kite", "Price"], ["Delta", "40 EUR"], ["Box", "55 EUR"]]):
        for c, text in enumerate(row):
            shape.table.cell(r, c).text = text
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def make_xlsx(formula_value: str | None = "42") -> bytes:
    """A workbook of two sheets; ``Totals!C2`` is a formula whose cached value is given.

    openpyxl writes formulas without a cached value (only Excel computes them), so the
    value Excel would have stored is written into the sheet's XML, as Excel leaves it.
    """
    from openpyxl import Workbook

    workbook = Workbook()
    stock = workbook.active
    stock.title = "Stock"
    stock.append(["Kite", "Colour", "In stock"])
    stock.append(["Delta", "red", 12])
    stock.append(["Box", "blue", 3])
    totals = workbook.create_sheet("Totals")
    totals.append(["Item", "Count", "Double"])
    totals.append(["Delta", 21, "=B2*2"])
    out = io.BytesIO()
    workbook.save(out)
    if formula_value is None:
        return out.getvalue()
    return _rewrite_entry(
        out.getvalue(),
        "xl/worksheets/sheet2.xml",
        lambda xml: re.sub(r"(<f>B2\*2</f>)(<v\s*/>|<v></v>)?", rf"\1<v>{formula_value}</v>", xml),
    )


def make_epub() -> bytes:
    """An e-book with a title and two chapters (ebooklib)."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("kites-001")
    book.set_title("The Kite Book")
    book.set_language("en")
    chapters = []
    for number, (title, text) in enumerate(
        [
            ("Building a Kite", "Cut the spars from bamboo and tie them with waxed string."),
            ("Flying Safely", "Stay clear of power lines and airports when you fly."),
        ],
        start=1,
    ):
        chapter = epub.EpubHtml(title=title, file_name=f"ch{number}.xhtml", lang="en")
        chapter.content = f"<html><body><h1>{title}</h1><p>{text}</p></body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    out = io.BytesIO()
    epub.write_epub(out, book)
    return out.getvalue()


def with_bomb(data: bytes, size: int) -> bytes:
    """A copy of a zip package with one more entry: ``size`` zero bytes (deflating to little)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            archive.writestr(info, source.read(info))
        archive.writestr("media/bomb.bin", b"\0" * size)
    return out.getvalue()


def _rewrite_entry(data: bytes, name: str, change: object) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == name:
                content = change(content.decode()).encode()  # type: ignore[operator]
            archive.writestr(info, content)
    return out.getvalue()
