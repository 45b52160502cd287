"""Builders of test files: real PDFs and docx files, and broken or hostile ones."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

HTML_DIR = Path(__file__).resolve().parents[1] / "data" / "html"

LOREM = (
    "Heaps are binary trees for which every parent node has a value less than or equal to any "
    "of its children. This implementation uses arrays for which heap[k] <= heap[2*k+1] and "
    "heap[k] <= heap[2*k+2] for all k, counting elements from zero. For the sake of "
    "comparison, non-existing elements are considered to be infinite. The interesting "
    "property of a heap is that its smallest element is always the root, heap[0]. "
)


def make_pdf(pages: list[str]) -> bytes:
    """A real PDF with one page of text per item (fpdf2 core font: latin-1 only)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def encrypt_pdf(data: bytes, user_password: str, owner_password: str = "owner") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx() -> bytes:
    """A Word document: a title, two headed sections, a table."""
    import docx

    document = docx.Document()
    document.add_heading("Kite Manual", 0)
    document.add_heading("Getting Started", 1)
    document.add_paragraph("Unpack the kite and check the spars for cracks.")
    document.add_heading("Wind Conditions", 2)
    document.add_paragraph("Fly in steady winds between 8 and 25 km/h.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Wind"
    table.cell(0, 1).text = "Line"
    table.cell(1, 0).text = "light"
    table.cell(1, 1).text = "20 kg"
    document.add_heading("Safety", 1)
    document.add_paragraph("Never fly near power lines.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_with_bomb(size: int, declared_size: int | None = None) -> bytes:
    """A valid docx plus an entry of ``size`` zero bytes (which deflates to almost nothing).

    With ``declared_size``, both zip headers of that entry claim it inflates to only that many
    bytes: a header that lies, as a crafted zip bomb's would.
    """
    source = zipfile.ZipFile(io.BytesIO(make_docx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            archive.writestr(info, source.read(info))
        archive.writestr("word/media/bomb.bin", b"\0" * size)
    data = bytearray(out.getvalue())
    if declared_size is not None:
        _patch_declared_size(data, b"word/media/bomb.bin", declared_size)
    return bytes(data)


def _patch_declared_size(data: bytearray, name: bytes, size: int) -> None:
    """Overwrite an entry's uncompressed size in its local header and central directory."""
    local = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(name.decode()).header_offset
    struct.pack_into("<I", data, local + 22, size)
    end = data.rfind(b"PK\x05\x06")
    count = struct.unpack_from("<H", data, end + 10)[0]
    offset = struct.unpack_from("<I", data, end + 16)[0]
    for _ in range(count):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, offset + 28)
        if bytes(data[offset + 46 : offset + 46 + name_len]) == name:
            struct.pack_into("<I", data, offset + 24, size)
            return
        offset += 46 + name_len + extra_len + comment_len
    raise AssertionError(f"{name!r} not in the archive")
