"""Byte sniffing, decoding and text normalisation shared by the loaders."""

from __future__ import annotations

import codecs
import re
import unicodedata

from core.errors import UnreadableDocument, UnsupportedFileType
from ingest.base import Section
from ingest.tables import table_section

# Magic numbers of binary formats people commonly misname, and what to call them.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF file"),
    (b"PK\x03\x04", "a zip archive (docx, xlsx, ...)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "an executable"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xd0\xcf\x11\xe0", "a legacy Office file (doc, xls)"),
)
_SNIFF_BYTES = 8192
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\u00ad\u200b\ufeff]")
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\x85]")
_INLINE_SPACE = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_CHARSET = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9._-]+)""", re.IGNORECASE)


def binary_kind(data: bytes) -> str | None:
    """Return a description of ``data`` if it is binary rather than text, else None.

    Text with a UTF-16 byte-order mark is text even though it holds NUL bytes.
    """
    head = data[:_SNIFF_BYTES]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if b"\x00" in head:
        return "binary data"
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    if head and controls / len(head) > 0.05:
        return "binary data"
    return None


def require_text(data: bytes, name: str) -> None:
    """Refuse ``data`` that is binary although its name says text.

    Raises:
        UnsupportedFileType: the content is a binary format.
    """
    kind = binary_kind(data)
    if kind is not None:
        raise UnsupportedFileType(
            f"{name}: the name says text but the content is {kind}; give the file the "
            "extension of its real type, or convert it to text",
            {"file": name, "detected": kind},
        )


def decode_text(data: bytes, name: str, *, html: bool = False) -> str:
    """Decode file bytes as UTF-8 (BOM optional) or BOM-marked UTF-16.

    Legacy 8-bit encodings (cp1252, latin-1) are deliberately not guessed: they decode any
    byte string "successfully", so guessing would store mojibake without anyone noticing.
    HTML is the one exception, because it can name its charset in a ``<meta>`` tag; a
    declared charset is honoured if the bytes decode cleanly with it.

    Args:
        data: The file's bytes.
        name: File name, for error messages.
        html: Look for a declared charset when the bytes are not UTF-8.

    Returns:
        The decoded text.

    Raises:
        UnreadableDocument: the bytes are not UTF-8 or UTF-16 (nor a declared HTML charset).
    """
    if data.startswith(codecs.BOM_UTF8):
        codec = "utf-8-sig"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        codec = "utf-16"
    else:
        codec = "utf-8"
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        error = exc
    if html and (match := _CHARSET.search(data[:4096])):
        declared = match.group(1).decode("ascii")
        try:
            return data.decode(declared)
        except (LookupError, UnicodeDecodeError):
            pass
    raise UnreadableDocument(
        f"{name}: the text is not valid {codec.upper()} (byte {error.start} cannot be decoded); "
        "save the file as UTF-8 and upload it again",
        {"file": name, "position": error.start},
    )


def normalize_text(text: str) -> str:
    r"""Normalise text for indexing: NFC, collapsed whitespace within lines, paragraphs kept.

    Line breaks become ``\n``, control and invisible characters are removed, runs of spaces
    and tabs become one space, lines are stripped, and a run of blank lines becomes one blank
    line (the paragraph separator).
    """
    text = unicodedata.normalize("NFC", text)
    text = _LINE_BREAKS.sub("\n", text).replace("\f", "\n\n")
    text = _CONTROL.sub("", text)
    text = _INLINE_SPACE.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


class SectionBuilder:
    """Collects text under a stack of headings and cuts a ``Section`` at every heading."""

    def __init__(self, root: tuple[str, ...] = (), page: int | None = None) -> None:
        """Start with ``root`` headings above everything (e.g. a page title)."""
        self.sections: list[Section] = []
        self._root = root
        self._page = page
        self._stack: list[tuple[int, str]] = []
        self._parts: list[str] = []

    @property
    def heading_path(self) -> tuple[str, ...]:
        """The headings above the text being collected, outermost first."""
        return self._root + tuple(text for _, text in self._stack)

    def add(self, text: str) -> None:
        """Append raw text (normalised when the section is cut)."""
        self._parts.append(text)

    def heading(self, level: int, text: str) -> None:
        """Cut the current section and open one under heading ``text`` of ``level``."""
        self.flush()
        text = normalize_text(text).replace("\n", " ")
        if not text:
            return
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))

    def table(self, rows: list[list[str]]) -> None:
        """Cut the current section and add a table (header row first) as its own section."""
        self.flush()
        section = table_section(rows, self.heading_path, self._page)
        if section is not None:
            self.sections.append(section)

    def flush(self) -> None:
        """Turn the text collected so far into a section, if it holds any."""
        text = normalize_text("".join(self._parts))
        self._parts.clear()
        if text:
            self.sections.append(Section(text, self._page, self.heading_path))
