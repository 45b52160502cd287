"""Turn files into ``LoadedDocument``s: one loader per file type, chosen by a registry.

The type is decided by the extension and checked against the content: a binary file named
``.txt``, a ``.pdf`` that does not start with ``%PDF`` or a ``.docx`` that is not a zip archive
is refused before any parser sees it. Every loader returns normalised text (see
``ingest.textutil.normalize_text``) split into ``Section``s at headings or pages.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.errors import EmptyDocument, FileTooLarge, UnreadableDocument, UnsupportedFileType
from ingest.base import LoadedDocument, Section
from ingest.limits import Deadline, LoadContext, LoadLimits
from ingest.textutil import SectionBuilder, decode_text, normalize_text, require_text

__all__ = [
    "LOADERS",
    "LoadLimits",
    "Loader",
    "check_file",
    "file_extension",
    "load_bytes",
    "load_file",
    "supported_extensions",
]

Loader = Callable[[bytes, LoadContext], list[Section]]
"""A loader turns a file's bytes into sections; it raises the ``IngestError`` subclasses."""

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _text(data: bytes, ctx: LoadContext) -> list[Section]:
    require_text(data, ctx.name)
    return [Section(normalize_text(decode_text(data, ctx.name)))]


def _markdown(data: bytes, ctx: LoadContext) -> list[Section]:
    """Split at ATX headings (``#`` to ``######``), ignoring ``#`` lines in fenced code."""
    require_text(data, ctx.name)
    builder = SectionBuilder()
    fence: str | None = None
    for line in decode_text(data, ctx.name).splitlines():
        if fence is not None:
            closing = _FENCE.match(line)
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence):
                fence = None
        elif opening := _FENCE.match(line):
            fence = opening.group(1)
        elif heading := _ATX_HEADING.match(line):
            builder.heading(len(heading.group(1)), heading.group(2) or "")
            continue
        builder.add(line + "\n")
    builder.flush()
    return builder.sections


def _csv(data: bytes, ctx: LoadContext) -> list[Section]:
    """One paragraph per row of ``column: value`` lines; empty cells are left out."""
    require_text(data, ctx.name)
    text = decode_text(data, ctx.name)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:8192], ",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = csv.reader(io.StringIO(text, newline=""), dialect)
        header = [cell.strip() for cell in next(rows, [])]
        records: list[str] = []
        for row in rows:
            ctx.deadline.check()
            lines = [
                f"{header[i] if i < len(header) and header[i] else f'column {i + 1}'}: {value}"
                for i, value in enumerate(cell.strip() for cell in row)
                if value
            ]
            if lines:
                records.append("\n".join(lines))
    except csv.Error as exc:
        raise UnreadableDocument(
            f"{ctx.name}: not a valid CSV file ({exc}); check its quoting", {"file": ctx.name}
        ) from exc
    if not records and any(header):
        records.append("\n".join(header))
    return [Section(normalize_text("\n\n".join(records)))]


def _flatten(value: Any, deadline: Deadline) -> Iterator[str]:
    """Yield ``key.path: value`` lines for a JSON value (iteratively: no recursion limit)."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            deadline.check()
            children = [(f"{path}.{key}" if path else str(key), v) for key, v in item.items()]
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(f"{path}[{i}]", v) for i, v in enumerate(item)]))
        elif item is None or item == "":
            continue
        else:
            text = json.dumps(item) if isinstance(item, bool) else str(item)
            yield f"{path}: {text}" if path else text


def _json_records(records: list[Any], ctx: LoadContext) -> list[Section]:
    paragraphs = ["\n".join(_flatten(record, ctx.deadline)) for record in records]
    return [Section(normalize_text("\n\n".join(p for p in paragraphs if p)))]


def _json(data: bytes, ctx: LoadContext) -> list[Section]:
    """A top-level array is one record per element; anything else is one record."""
    require_text(data, ctx.name)
    try:
        value = json.loads(decode_text(data, ctx.name))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UnreadableDocument(
            f"{ctx.name}: not valid JSON ({exc}); fix the syntax or save it as .txt",
            {"file": ctx.name},
        ) from exc
    return _json_records(value if isinstance(value, list) else [value], ctx)


def _jsonl(data: bytes, ctx: LoadContext) -> list[Section]:
    """One record per non-blank line."""
    require_text(data, ctx.name)
    records: list[Any] = []
    for number, line in enumerate(decode_text(data, ctx.name).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise UnreadableDocument(
                f"{ctx.name}: line {number} is not valid JSON ({exc}); fix or remove that line",
                {"file": ctx.name, "line": number},
            ) from exc
    return _json_records(records, ctx)


def _html(data: bytes, ctx: LoadContext) -> list[Section]:
    from ingest.html_loader import load_html

    return load_html(data, ctx)


def _pdf(data: bytes, ctx: LoadContext) -> list[Section]:
    from ingest.office_loaders import load_pdf

    return load_pdf(data, ctx)


def _docx(data: bytes, ctx: LoadContext) -> list[Section]:
    from ingest.office_loaders import load_docx

    return load_docx(data, ctx)


def _pptx(data: bytes, ctx: LoadContext) -> list[Section]:
    from ingest.package_loaders import load_pptx

    return load_pptx(data, ctx)


def _xlsx(data: bytes, ctx: LoadContext) -> list[Section]:
    from ingest.package_loaders import load_xlsx

    return load_xlsx(data, ctx)


def _epub(data: bytes, ctx: LoadContext) -> list[Section]:
    from ingest.package_loaders import load_epub

    return load_epub(data, ctx)


def _image(extension: str) -> Loader:
    def load(data: bytes, ctx: LoadContext) -> list[Section]:
        from ingest.scan_loaders import image_loader

        return image_loader(extension)(data, ctx)

    return load


LOADERS: dict[str, Loader] = {
    ".txt": _text,
    ".text": _text,
    ".md": _markdown,
    ".markdown": _markdown,
    ".html": _html,
    ".htm": _html,
    ".pdf": _pdf,
    ".docx": _docx,
    ".pptx": _pptx,
    ".xlsx": _xlsx,
    ".epub": _epub,
    ".png": _image(".png"),
    ".jpg": _image(".jpg"),
    ".jpeg": _image(".jpeg"),
    ".tif": _image(".tif"),
    ".tiff": _image(".tiff"),
    ".csv": _csv,
    ".json": _json,
    ".jsonl": _jsonl,
}
"""File extension (lower case, with the dot) to loader; parsers are imported lazily."""


def supported_extensions() -> list[str]:
    """Return the extensions ``load_file`` reads, sorted."""
    return sorted(LOADERS)


def _loader_for(source: str, extension: str) -> tuple[str, Loader]:
    ext = extension.lower()
    loader = LOADERS.get(ext)
    if loader is None:
        raise UnsupportedFileType(
            f"{source}: files of type '{ext or '(no extension)'}' are not supported; supported "
            f"types are {', '.join(supported_extensions())}",
            {"file": source, "extension": ext, "supported": supported_extensions()},
        )
    return ext, loader


def check_file(source: str, extension: str, size: int, limits: LoadLimits) -> None:
    """Refuse a file by its type and size alone, before reading it.

    Raises:
        UnsupportedFileType: no loader for ``extension``.
        FileTooLarge: ``size`` is over ``limits.max_file_bytes``.
    """
    _loader_for(source, extension)
    if size > limits.max_file_bytes:
        raise FileTooLarge(
            f"{source}: the file is {size / 1e6:.1f} MB, over the limit of "
            f"{limits.max_file_bytes / 1e6:.1f} MB; split it or raise RAG_INGEST__MAX_FILE_MB",
            {"file": source, "size": size, "max_file_bytes": limits.max_file_bytes},
        )


def load_bytes(
    data: bytes, source: str, limits: LoadLimits, extension: str | None = None
) -> LoadedDocument:
    """Load a file already in memory.

    Args:
        data: The file's bytes.
        source: The file's name, used in error messages.
        limits: Size, page, time and decompression bounds.
        extension: The file type, as an extension with the dot (``".pdf"``); by default the
            extension of ``source``.

    Returns:
        The document's non-empty sections.

    Raises:
        UnsupportedFileType: unknown extension, or content of another type than the name says.
        FileTooLarge: a bound in ``limits`` is exceeded.
        EmptyDocument: the file holds no text.
        UnreadableDocument: corrupt, encrypted or undecodable content.
    """
    ext, loader = _loader_for(source, Path(source).suffix if extension is None else extension)
    check_file(source, ext, len(data), limits)
    if not data.strip():
        raise EmptyDocument(
            f"{source}: the file is empty; there is nothing to index", {"file": source}
        )
    ctx = LoadContext(source, limits, Deadline(limits.max_parse_seconds, source))
    sections = [section for section in loader(data, ctx) if section.text]
    if not sections:
        raise EmptyDocument(_nothing_read(source, ctx.warnings), {"file": source})
    return LoadedDocument(
        source=source, file_type=ext.lstrip("."), sections=sections, warnings=ctx.warnings
    )


def _nothing_read(source: str, warnings: list[str]) -> str:
    """Say why a file gave no text: the unreadable pages' reasons, if there are any."""
    if warnings:
        reasons = "; ".join(w.removeprefix(f"{source}: ") for w in warnings[:3])
        more = f" (and {len(warnings) - 3} more)" if len(warnings) > 3 else ""
        return f"{source}: no text could be extracted: {reasons}{more}"
    return f"{source}: no text could be extracted; there is nothing to index"


def file_extension(path: Path, source: str) -> str:
    """Return the extension that picks the loader: the source name's, else the path's.

    Uploads are staged under generated names (``3f2a....part``), so the name the document is
    known by is the one that carries its type.
    """
    return Path(source).suffix or path.suffix


def load_file(path: Path, source: str, limits: LoadLimits) -> LoadedDocument:
    """Load a file from disk, refusing it before reading if it is too large.

    Args:
        path: The file to read.
        source: The name the document is known by, used in error messages; its extension
            picks the loader (the path's extension when it has none).
        limits: Size, page, time and decompression bounds.

    Returns:
        The document's non-empty sections.

    Raises:
        UnsupportedFileType: unknown extension, or content of another type than the name says.
        FileTooLarge: a bound in ``limits`` is exceeded.
        EmptyDocument: the file holds no text.
        UnreadableDocument: the file cannot be read, or is corrupt, encrypted or undecodable.
    """
    try:
        check_file(source, file_extension(path, source), path.stat().st_size, limits)
        with path.open("rb") as handle:
            data = handle.read(limits.max_file_bytes + 1)
    except OSError as exc:
        raise UnreadableDocument(
            f"{source}: the file cannot be read ({exc.strerror or exc}); check it exists and "
            "is readable",
            {"file": source},
        ) from exc
    return load_bytes(data, source, limits, file_extension(path, source))
