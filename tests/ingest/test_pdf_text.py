"""PDF text: pdfium keeps the spaces pypdf drops; a ruled box of one column is text, not a table."""

from __future__ import annotations

import io

import pytest

from bench.eval.corpora import CORPORA
from ingest.limits import LoadLimits
from ingest.loaders import load_bytes
from ingest.scan_loaders import join_soft_hyphens
from tests.ingest.documents import table_pdf


def debian_reference_page(number: int) -> bytes:
    """Page ``number`` (1-based) of the installed Debian Reference, as a one-page PDF."""
    from pypdf import PdfReader, PdfWriter

    corpus = CORPORA["debian_reference"]
    if not corpus.installed():
        pytest.skip(f"{corpus.root} is missing: apt-get install {corpus.package}")
    reader = PdfReader(str(corpus.files()[0][0]))
    writer = PdfWriter()
    writer.add_page(reader.pages[number - 1])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_words_of_a_justified_pdf_keep_their_spaces() -> None:
    from pypdf import PdfReader

    data = debian_reference_page(41)
    # pypdf, which read PDF text before, glues this page's words together ...
    glued = PdfReader(io.BytesIO(data)).pages[0].extract_text()
    assert "Therearetwomethods" in glued
    # ... the loader reads them apart (pdfium), so BM25 and the embedder see words.
    text = "\n".join(s.text for s in load_bytes(data, "ref.pdf", LoadLimits()).sections)
    assert "There are two methods of associating a file" in text
    assert "Symbolic link or symlink" in text


def test_text_beside_the_tables_of_a_ruled_page_keeps_its_spaces() -> None:
    data = debian_reference_page(121)  # a package table between two paragraphs
    sections = load_bytes(data, "ref.pdf", LoadLimits()).sections
    text = "\n".join(s.text for s in sections if not s.table_header)
    assert "List of tools to provide extra security measures" in text
    assert "Move the hard disk to a PC with CD bootable UEFI/BIOS" in text


def test_a_one_column_ruled_box_is_text_not_a_table() -> None:
    data = table_pdf([["$ apt-get update"], ["$ apt-get install vim sudo"]])
    sections = load_bytes(data, "box.pdf", LoadLimits()).sections
    assert not any(s.table_header for s in sections)
    text = "\n".join(s.text for s in sections)
    for line in ("The highest mountains", "$ apt-get update", "$ apt-get install vim sudo",
                 "Heights are rounded to the metre."):  # fmt: skip
        assert line in text


def test_two_columns_still_make_a_table() -> None:
    sections = load_bytes(table_pdf(), "mountains.pdf", LoadLimits()).sections
    tables = [s for s in sections if s.table_header]
    assert len(tables) == 1
    text = "\n".join(s.text for s in sections if not s.table_header)
    assert "The highest mountains of each land, with their first ascents." in text
    assert "Heights are rounded to the metre." in text


def test_soft_hyphens_at_line_ends_join_the_word() -> None:
    assert join_soft_hyphens("an exam\ufffe\r\nple of it") == "an example of it"
    assert join_soft_hyphens("trail\ufffe") == "trail"
    assert join_soft_hyphens("plain\r\ntext") == "plain\r\ntext"
