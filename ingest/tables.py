"""Tables as markdown: one line per row, the header row repeated at the top of every chunk.

A loader hands the rows of a table (lists of cell texts, the first row the header) to
``table_section``; the section it returns carries the markdown header (``table_header``) apart,
so chunking (``ingest.chunking``) can cut the table between rows only and start every chunk
with the header: a question about one row then finds a chunk holding the header and that row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ingest.base import Section

_SPACE = re.compile(r"\s+")


def _cell(text: str) -> str:
    """One cell on one line, its pipes escaped so they do not split the row."""
    return _SPACE.sub(" ", text).strip().replace("|", "\\|")


def markdown_row(cells: Sequence[str]) -> str:
    """Render one row: ``| a | b |``."""
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def table_section(
    rows: Sequence[Sequence[str]], heading_path: tuple[str, ...] = (), page: int | None = None
) -> Section | None:
    """Turn a table's rows into a ``Section`` of markdown rows with its header apart.

    Rows are padded to the widest; rows with no text at all are dropped. A table of one row
    has no body and becomes a plain section of that row.

    Args:
        rows: The cell texts of each row, the header row first.
        heading_path: The headings above the table.
        page: The 1-based page, for paged formats.

    Returns:
        The section, or None if the table holds no text.
    """
    kept = [list(row) for row in rows if any(_cell(c) for c in row)]
    if not kept:
        return None
    width = max(len(row) for row in kept)
    lines = [markdown_row(row + [""] * (width - len(row))) for row in kept]
    if len(lines) == 1:
        return Section(lines[0], page, heading_path)
    header = lines[0] + "\n" + markdown_row(["---"] * width)
    return Section("\n".join([header, *lines[1:]]), page, heading_path, table_header=header)
