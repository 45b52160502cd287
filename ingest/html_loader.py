"""HTML to sections: keep the main content, drop page chrome, split at h1 to h6."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PreformattedString, Tag

from core.errors import FileTooLarge, UnreadableDocument
from ingest.base import Section
from ingest.limits import LoadContext
from ingest.textutil import SectionBuilder, decode_text, require_text

# Elements that are never content.
_DROP_TAGS = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside")
# Words in class, id or role that mark page chrome (Sphinx's sphinxsidebar, related, footer),
# except in layout modifiers of content wrappers (has-sidebar, with-sidebar, no-sidebar).
_CHROME = re.compile(r"sidebar|navigation|related|footer|breadcrumb", re.IGNORECASE)
_MODIFIER = re.compile(r"^(?:has|with|no|without|show|hide)[-_]", re.IGNORECASE)
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_BLOCKS = (
    "address", "article", "blockquote", "caption", "dd", "details", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "hr", "li", "main", "ol", "p", "section", "summary",
    "table", "tbody", "tfoot", "thead", "tr", "ul",
)  # fmt: skip
_CELLS = ("td", "th")
_SPACE = re.compile(r"\s+")


class _Marker(NavigableString):
    """Text inserted by the loader, kept verbatim (paragraph breaks, preformatted text)."""


class _Table(NavigableString):
    """A table's rows of cell texts (the first the header), standing in for the table."""

    rows: list[list[str]]


class _Heading(NavigableString):
    """A heading's text, standing in for the heading element."""

    level: int


def _is_chrome(tag: Tag) -> bool:
    if tag.name in _DROP_TAGS:
        return True
    classes = tag.get("class")
    parts = [classes] if isinstance(classes, str) else list(classes or [])
    words = [*parts, str(tag.get("id") or ""), str(tag.get("role") or "")]
    return any(_CHROME.search(word) and not _MODIFIER.match(word) for word in words)


def _main_content(soup: BeautifulSoup) -> Tag:
    for candidate in (
        soup.select_one("[role=main]"),
        soup.find("main"),
        soup.find("article"),
        soup.body,
    ):
        if isinstance(candidate, Tag):
            return candidate
    return soup


MAX_NESTING = 256
"""Deepest element nesting read; real pages stay far below (Sphinx pages nest about 15 deep).

Marking blocks costs time in proportion to nesting depth per element, so a hostile page of
thousands of nested elements would otherwise take minutes."""


def _nesting_exceeds(root: Tag, limit: int) -> bool:
    """True if any element lies more than ``limit`` levels below ``root`` (iterative, O(n))."""
    stack: list[tuple[Tag, int]] = [(root, 0)]
    while stack:
        tag, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in tag.contents if isinstance(child, Tag))
    return False


def _mark_structure(main: Tag) -> None:
    """Replace headings, tables, preformatted text and line breaks by markers.

    Tables become ``_Table`` markers holding their rows (a nested table is flattened into
    its cell); blocks are delimited by blank lines so that paragraphs survive normalisation.
    """
    for tag in main.find_all(True):
        if not tag.decomposed and _is_chrome(tag):
            tag.decompose()
    for link in main.select("a.headerlink"):
        link.decompose()
    for table in reversed(main.find_all("table")):  # inner tables first
        rows = [
            [_SPACE.sub(" ", cell.get_text(" ")).strip() for cell in row.find_all(_CELLS)]
            for row in table.find_all("tr")
        ]
        table_marker = _Table("\n".join(" | ".join(row) for row in rows))
        table_marker.rows = rows
        table.replace_with(table_marker)
    for pre in main.find_all("pre"):
        pre.replace_with(_Marker("\n\n" + pre.get_text() + "\n\n"))
    for heading in main.find_all(_HEADINGS):
        marker = _Heading(heading.get_text().replace("¶", ""))
        marker.level = int(heading.name[1])
        heading.replace_with(marker)
    for br in main.find_all("br"):
        br.replace_with(_Marker("\n"))
    for block in main.find_all(_BLOCKS):
        block.insert_before(_Marker("\n\n"))
        block.append(_Marker("\n\n"))


def load_html(data: bytes, ctx: LoadContext) -> list[Section]:
    """Load an HTML page as one section per heading.

    The main content is ``[role=main]``, else ``<main>``, else ``<article>``, else ``<body>``.
    Scripts, styles, navigation, headers, footers, asides and elements whose class, id or
    role names a sidebar, navigation, related links, footer or breadcrumb are dropped, as
    are Sphinx's ``¶`` permalinks. Each section's heading path runs from the page's ``h1``
    down; a page without ``h1`` uses its ``<title>`` as the first element.

    Raises:
        UnsupportedFileType: the content is binary.
        UnreadableDocument: the bytes cannot be decoded or parsed.
    """
    require_text(data, ctx.name)
    text = decode_text(data, ctx.name, html=True)
    try:
        soup = BeautifulSoup(text, "lxml")
    except Exception as exc:  # lxml raises assorted errors on hostile input
        raise UnreadableDocument(
            f"{ctx.name}: the HTML cannot be parsed ({exc})", {"file": ctx.name}
        ) from exc
    ctx.deadline.check()
    title = _SPACE.sub(" ", soup.title.get_text()).strip() if soup.title else ""
    main = _main_content(soup)
    root = (title,) if title and main.find("h1") is None else ()
    if _nesting_exceeds(main, MAX_NESTING):
        raise FileTooLarge(
            f"{ctx.name}: the HTML nests elements more than {MAX_NESTING} levels deep; "
            "flatten the page (real documents nest far less)",
            {"file": ctx.name, "max_nesting": MAX_NESTING},
        )
    _mark_structure(main)
    ctx.deadline.check()
    builder = SectionBuilder(root=root)
    for node in main.descendants:
        if isinstance(node, _Heading):
            builder.heading(node.level, str(node))
        elif isinstance(node, _Table):
            builder.table(node.rows)
        elif isinstance(node, _Marker):
            builder.add(str(node))
        elif isinstance(node, NavigableString) and not isinstance(node, PreformattedString):
            builder.add(_SPACE.sub(" ", str(node)))
    builder.flush()
    return builder.sections
