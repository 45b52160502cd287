from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest

from core.errors import EmptyDocument, FileTooLarge, UnreadableDocument, UnsupportedFileType
from ingest.limits import LoadLimits
from ingest.loaders import LOADERS, load_bytes, load_file
from ingest.textutil import normalize_text
from tests.ingest.files import (
    HTML_DIR,
    LOREM,
    docx_with_bomb,
    encrypt_pdf,
    make_docx,
    make_pdf,
)


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# -- text, markdown, csv, json ------------------------------------------------------------


def test_text_is_normalised_and_paragraphs_kept(tmp_path: Path, limits: LoadLimits) -> None:
    raw = "\ufeffCafe\u0301  au\tlait\r\nsecond   line\r\n\r\n\r\n\r\nNew  paragraph\x07.\n"
    doc = load_file(write(tmp_path, "a.txt", raw), "a.txt", limits)
    assert doc.file_type == "txt"
    assert [s.text for s in doc.sections] == ["Café au lait\nsecond line\n\nNew paragraph."]
    assert unicodedata.is_normalized("NFC", doc.sections[0].text)
    assert doc.sections[0].page is None
    assert doc.sections[0].heading_path == ()


def test_utf16_with_bom_is_decoded(tmp_path: Path, limits: LoadLimits) -> None:
    path = write(tmp_path, "u.txt", "Grüße aus Köln".encode("utf-16"))
    assert load_file(path, "u.txt", limits).sections[0].text == "Grüße aus Köln"


def test_non_utf8_text_is_refused_not_mojibaked(tmp_path: Path, limits: LoadLimits) -> None:
    path = write(tmp_path, "latin.txt", "Café crème, déjà vu".encode("cp1252"))
    with pytest.raises(UnreadableDocument, match=r"latin\.txt.*UTF-8") as info:
        load_file(path, "latin.txt", limits)
    assert "save the file as UTF-8" in info.value.message


def test_binary_named_txt_is_refused(tmp_path: Path, limits: LoadLimits) -> None:
    garbage = bytes(range(256)) * 8
    with pytest.raises(UnsupportedFileType, match=r"garbage\.txt.*binary"):
        load_file(write(tmp_path, "garbage.txt", garbage), "garbage.txt", limits)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(200)
    with pytest.raises(UnsupportedFileType, match="PNG image"):
        load_file(write(tmp_path, "pic.md", png), "pic.md", limits)


def test_unknown_extension_lists_supported(tmp_path: Path, limits: LoadLimits) -> None:
    with pytest.raises(UnsupportedFileType, match=r"\.exe.*\.docx.*\.pdf") as info:
        load_file(write(tmp_path, "tool.exe", b"MZ"), "tool.exe", limits)
    assert ".jsonl" in info.value.detail["supported"]


@pytest.mark.parametrize("content", [b"", b"  \n\n\t ", "\u200b\n".encode()])
def test_empty_file_is_refused(tmp_path: Path, limits: LoadLimits, content: bytes) -> None:
    with pytest.raises(EmptyDocument, match=r"empty\.txt"):
        load_file(write(tmp_path, "empty.txt", content), "empty.txt", limits)


def test_oversize_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = write(tmp_path, "big.txt", "word " * 400)
    with pytest.raises(FileTooLarge, match=r"big\.txt.*over the limit") as info:
        load_file(path, "big.txt", LoadLimits(max_file_bytes=1000))
    assert info.value.detail["size"] == 2000


def test_type_comes_from_source_name_for_staged_uploads(tmp_path: Path, limits: LoadLimits) -> None:
    path = write(tmp_path, "3f2a9c.part", "# Title\n\nbody")
    doc = load_file(path, "notes.md", limits)
    assert doc.file_type == "md"
    assert doc.sections[0].heading_path == ("Title",)


def test_markdown_heading_paths_ignore_fenced_code(tmp_path: Path, limits: LoadLimits) -> None:
    text = (
        "Intro text.\n\n"
        "# Guide\n\nWelcome.\n\n"
        "## Install ##\n\nRun this:\n\n```bash\n# not a heading\npip install kite\n```\n\n"
        "~~~\n## also not a heading\n~~~\n\n"
        "### Linux\n\nUse apt.\n\n"
        "## Usage\n\nFly it.\n\n"
        "# C# notes\n\nSharp.\n"
    )
    doc = load_file(write(tmp_path, "guide.md", text), "guide.md", limits)
    paths = [s.heading_path for s in doc.sections]
    assert paths == [
        (),
        ("Guide",),
        ("Guide", "Install"),
        ("Guide", "Install", "Linux"),
        ("Guide", "Usage"),
        ("C# notes",),
    ]
    install = doc.sections[2].text
    assert "# not a heading" in install
    assert "## also not a heading" in install


def test_csv_rows_become_column_value_lines(tmp_path: Path, limits: LoadLimits) -> None:
    text = 'name,colour,price\nkite,red,12.5\nspool,,3\n"big, kite",blue,40\n'
    doc = load_file(write(tmp_path, "shop.csv", text), "shop.csv", limits)
    assert doc.sections[0].text == (
        "name: kite\ncolour: red\nprice: 12.5\n\n"
        "name: spool\nprice: 3\n\n"
        "name: big, kite\ncolour: blue\nprice: 40"
    )


def test_json_is_flattened_per_record(tmp_path: Path, limits: LoadLimits) -> None:
    records = [
        {"name": "kite", "specs": {"span_cm": 120, "colours": ["red", "blue"]}, "ok": True},
        {"name": "spool", "specs": {"line": {"kg": 20}}, "note": None},
    ]
    doc = load_file(write(tmp_path, "items.json", json.dumps(records)), "items.json", limits)
    assert doc.sections[0].text == (
        "name: kite\nspecs.span_cm: 120\nspecs.colours[0]: red\nspecs.colours[1]: blue\n"
        "ok: true\n\nname: spool\nspecs.line.kg: 20"
    )


def test_jsonl_one_record_per_line(tmp_path: Path, limits: LoadLimits) -> None:
    text = '{"q": "What is a heap?", "a": "A tree"}\n\n{"q": "Why?", "tags": ["x"]}\n'
    doc = load_file(write(tmp_path, "qa.jsonl", text), "qa.jsonl", limits)
    assert doc.sections[0].text == "q: What is a heap?\na: A tree\n\nq: Why?\ntags[0]: x"


def test_jsonl_bad_line_is_named(tmp_path: Path, limits: LoadLimits) -> None:
    path = write(tmp_path, "bad.jsonl", '{"a": 1}\n{"a": \n')
    with pytest.raises(UnreadableDocument, match="line 2"):
        load_file(path, "bad.jsonl", limits)


def test_deeply_nested_json_is_refused_cleanly(tmp_path: Path, limits: LoadLimits) -> None:
    path = write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(UnreadableDocument, match="not valid JSON"):
        load_file(path, "deep.json", limits)


# -- HTML ---------------------------------------------------------------------------------


def test_sphinx_page_sections_and_heading_paths(limits: LoadLimits) -> None:
    doc = load_file(HTML_DIR / "json.html", "json.html", limits)
    paths = [s.heading_path for s in doc.sections]
    title = "json — JSON encoder and decoder"
    assert paths[0] == (title,)
    assert (title, "Basic Usage") in paths
    assert (title, "Standard Compliance and Interoperability", "Character Encodings") in paths
    text = "\n".join(s.text for s in doc.sections)
    assert "¶" not in text
    assert not any("¶" in h for p in paths for h in p)
    assert "Table of Contents" not in text  # sidebar
    assert "Previous topic" not in text
    assert "Theme" not in text  # header/nav chrome
    assert "json.dumps(obj, *, skipkeys=False" in text  # signatures keep their spans joined
    assert ">>> import json" in text  # code blocks kept
    assert "object | dict" in text  # table rows as cells


def test_html_fallbacks_and_chrome_removal(tmp_path: Path, limits: LoadLimits) -> None:
    html = """<html><head><title>Kite Shop</title><style>p{}</style></head><body>
      <header>Site header</header>
      <div class="breadcrumbs">Home / Kites</div>
      <div id="left-sidebar">Links</div>
      <div role="navigation">Menu</div>
      <p>Welcome   to the&nbsp;shop.<br>Second line.</p>
      <h2>Deltas</h2><p>Stable kites.</p><script>alert(1)</script>
      <h3>Small</h3><p>For kids.</p>
      <h2>Boxes</h2><p>Strong lift.</p>
      <footer>(c) us</footer></body></html>"""
    doc = load_file(write(tmp_path, "shop.html", html), "shop.html", limits)
    assert [(s.heading_path, s.text) for s in doc.sections] == [
        (("Kite Shop",), "Welcome to the shop.\nSecond line."),
        (("Kite Shop", "Deltas"), "Stable kites."),
        (("Kite Shop", "Deltas", "Small"), "For kids."),
        (("Kite Shop", "Boxes"), "Strong lift."),
    ]


def test_layout_modifier_classes_are_not_chrome(tmp_path: Path, limits: LoadLimits) -> None:
    html = (
        '<body><div class="page has-sidebar"><p>content</p>'
        '<div class="sidebar-left">chrome</div></div></body>'
    )
    doc = load_file(write(tmp_path, "l.html", html), "l.html", limits)
    assert [s.text for s in doc.sections] == ["content"]


@pytest.mark.parametrize("name", ["big.html", "big.pdf", "big.docx", "big.json"])
def test_every_type_is_size_bounded(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, b"%PDF-" + b"x" * 5000)
    with pytest.raises(FileTooLarge, match="over the limit"):
        load_file(path, name, LoadLimits(max_file_bytes=4096))
    with pytest.raises(FileTooLarge):
        load_bytes(path.read_bytes(), name, LoadLimits(max_file_bytes=4096))


def test_html_main_element_is_preferred(tmp_path: Path, limits: LoadLimits) -> None:
    html = "<body><div>outside</div><main><h1>T</h1><p>inside</p></main></body>"
    doc = load_file(write(tmp_path, "m.htm", html), "m.htm", limits)
    assert [(s.heading_path, s.text) for s in doc.sections] == [(("T",), "inside")]


def test_html_declared_charset_is_honoured(tmp_path: Path, limits: LoadLimits) -> None:
    html = '<html><head><meta charset="windows-1252"></head><body><p>Café</p></body></html>'
    doc = load_file(write(tmp_path, "c.html", html.encode("cp1252")), "c.html", limits)
    assert doc.sections[0].text == "Café"


# -- PDF ----------------------------------------------------------------------------------


def test_pdf_one_section_per_page_with_page_numbers(tmp_path: Path, limits: LoadLimits) -> None:
    data = make_pdf(["First page about kites.", "", "Third page about spools."])
    doc = load_file(write(tmp_path, "m.pdf", data), "m.pdf", limits)
    assert doc.file_type == "pdf"
    assert [(s.page, s.text) for s in doc.sections] == [
        (1, "First page about kites."),
        (3, "Third page about spools."),
    ]


def test_pdf_with_owner_password_only_is_read(tmp_path: Path, limits: LoadLimits) -> None:
    data = encrypt_pdf(make_pdf(["Open to read."]), user_password="")
    doc = load_file(write(tmp_path, "o.pdf", data), "o.pdf", limits)
    assert doc.sections[0].text == "Open to read."


def test_encrypted_pdf_is_refused(tmp_path: Path, limits: LoadLimits) -> None:
    data = encrypt_pdf(make_pdf(["Secret."]), user_password="secret")
    with pytest.raises(UnreadableDocument, match=r"enc\.pdf: encrypted PDF.*remove the password"):
        load_file(write(tmp_path, "enc.pdf", data), "enc.pdf", limits)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(make_pdf([LOREM])[:600], id="truncated"),
        pytest.param(b"%PDF-1.7\n" + bytes(range(256)) * 4, id="garbage"),
    ],
)
def test_corrupt_pdf_is_refused(tmp_path: Path, limits: LoadLimits, data: bytes) -> None:
    with pytest.raises(UnreadableDocument, match=r"bad\.pdf: .*damaged"):
        load_file(write(tmp_path, "bad.pdf", data), "bad.pdf", limits)


def test_pdf_without_magic_is_refused(tmp_path: Path, limits: LoadLimits) -> None:
    with pytest.raises(UnreadableDocument, match="not a PDF"):
        load_file(write(tmp_path, "fake.pdf", "just text"), "fake.pdf", limits)


def test_pdf_over_page_bound_is_refused(tmp_path: Path) -> None:
    data = make_pdf(["a", "b", "c"])
    with pytest.raises(FileTooLarge, match="3 pages, over the limit of 2"):
        load_bytes(data, "long.pdf", LoadLimits(max_pdf_pages=2))


def test_image_only_pdf_is_empty(tmp_path: Path, limits: LoadLimits) -> None:
    with pytest.raises(EmptyDocument, match="OCR"):
        load_bytes(make_pdf(["", ""]), "scan.pdf", limits)


def test_parse_time_bound(tmp_path: Path) -> None:
    data = make_pdf(["a", "b"])
    with pytest.raises(FileTooLarge, match="parsing took longer than"):
        load_bytes(data, "slow.pdf", LoadLimits(max_parse_seconds=-1.0))


# -- docx ---------------------------------------------------------------------------------


def test_docx_headings_make_the_heading_path(tmp_path: Path, limits: LoadLimits) -> None:
    doc = load_file(write(tmp_path, "manual.docx", make_docx()), "manual.docx", limits)
    assert [(s.heading_path, s.text) for s in doc.sections] == [
        (("Kite Manual", "Getting Started"), "Unpack the kite and check the spars for cracks."),
        (
            ("Kite Manual", "Getting Started", "Wind Conditions"),
            "Fly in steady winds between 8 and 25 km/h.",
        ),
        (
            ("Kite Manual", "Getting Started", "Wind Conditions"),
            "| Wind | Line |\n| --- | --- |\n| light | 20 kg |",
        ),
        (("Kite Manual", "Safety"), "Never fly near power lines."),
    ]


def test_docx_that_is_not_a_zip_is_refused(tmp_path: Path, limits: LoadLimits) -> None:
    with pytest.raises(UnreadableDocument, match="not a Word document"):
        load_file(write(tmp_path, "x.docx", "plain text"), "x.docx", limits)


def test_zip_that_is_not_a_docx_is_refused(tmp_path: Path, limits: LoadLimits) -> None:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(UnreadableDocument, match="not a readable Word document"):
        load_bytes(out.getvalue(), "z.docx", limits)


def test_docx_zip_bomb_by_declared_size(limits: LoadLimits) -> None:
    with pytest.raises(FileTooLarge, match=r"declares .* over the limit of 1\.0 MB"):
        load_bytes(docx_with_bomb(3_000_000), "bomb.docx", limits)


def test_docx_zip_bomb_with_lying_header(limits: LoadLimits) -> None:
    data = docx_with_bomb(3_000_000, declared_size=100)
    assert len(data) < 100_000
    with pytest.raises(FileTooLarge, match=r"inflates past the limit of 1\.0 MB"):
        load_bytes(data, "bomb.docx", limits)


def test_every_extension_has_a_loader() -> None:
    assert set(LOADERS) >= {".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".csv"}
    assert {".json", ".jsonl"} <= set(LOADERS)


def test_normalize_text_idempotent() -> None:
    once = normalize_text(" a \u00a0 b \n\n\n c\r\nd ")
    assert once == "a b\n\nc\nd"
    assert normalize_text(once) == once
