"""Sentence splitting for evidence: character spans that respect code blocks and abbreviations.

Chunk text, as the loaders write it, keeps paragraphs apart with blank lines and preformatted
text (code, interpreter sessions) verbatim. A paragraph that looks like code stays one unit
(cut at line boundaries when long); a prose paragraph is split after ``.``, ``!`` or ``?``
followed by space and a capital, a digit, a quote or a bracket, except after an abbreviation
(``e.g.``, ``i.e.``, ``etc.`` before a lower-case word, ``Mr.``), a lone initial (``J.``) or
an ellipsis inside a sentence. Dotted names (``os.path.join``) and numbers (``3.11``) never
split: no space follows their dots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Unit", "split_sentences"]

MAX_CODE_CHARS = 400
"""A code paragraph longer than this is cut into runs of whole lines of at most this size."""

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    {
        "e.g",
        "i.e",
        "cf",
        "vs",
        "viz",
        "approx",
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "no",
        "fig",
        "sec",
        "ch",
        "vol",
        "p",
        "pp",
        "al",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    }
)
_CODE_LINE = re.compile(
    r"^(?:>>>|\.\.\.(?:\s|$)|\$ |\s{2,}\S|#|[}\])]|"
    r"(?:def|class|import|from|return|for|while|if|elif|else|try|except|with)\b.*:?$)"
)
_CODE_END = re.compile(r"[:{(\[,;=\\]$|\)$")


@dataclass(frozen=True)
class Unit:
    """A sentence or code block of a text: ``text[start:end]``, whitespace trimmed."""

    start: int
    end: int
    code: bool


def split_sentences(text: str) -> list[Unit]:
    """Split ``text`` into sentences and code blocks, as character spans.

    Args:
        text: A chunk's text.

    Returns:
        The units in order; each ``text[start:end]`` is non-empty with no surrounding
        whitespace, and units never overlap.
    """
    units: list[Unit] = []
    position = 0
    for match in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = match.start() if match is not None else len(text)
        units.extend(_paragraph_units(text, position, end))
        if match is not None:
            position = match.end()
    return units


def _paragraph_units(text: str, start: int, end: int) -> list[Unit]:
    start, end = _trim(text, start, end)
    if start >= end:
        return []
    paragraph = text[start:end]
    if _looks_like_code(paragraph):
        return _code_units(text, start, end)
    units: list[Unit] = []
    begin = start
    for match in _BOUNDARY.finditer(paragraph):
        cut = start + match.start() + 1
        if _is_abbreviation(text, begin, cut, text[start + match.end() :]):
            continue
        stop = start + match.end()
        unit_start, unit_end = _trim(text, begin, stop)
        if unit_start < unit_end:
            units.append(Unit(unit_start, unit_end, code=False))
        begin = stop
    unit_start, unit_end = _trim(text, begin, end)
    if unit_start < unit_end:
        units.append(Unit(unit_start, unit_end, code=False))
    return units


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _is_abbreviation(text: str, begin: int, dot: int, following: str) -> bool:
    """Whether the period before ``dot`` ends an abbreviation rather than a sentence."""
    if text[dot - 1] != ".":
        return False
    word = re.search(r"(\S+)\.$", text[begin:dot])
    if word is None:
        return False
    token = word.group(1).lstrip("(\"'“‘[").lower()
    if token in _ABBREVIATIONS or token.rstrip(".") in _ABBREVIATIONS:
        return True
    if len(token) == 1 and token.isalpha() and text[dot - 2 : dot - 1].isupper():
        return True  # an initial: "J. Smith"
    if token.endswith(".."):
        return following[:1].islower()  # an ellipsis inside a sentence
    return token == "etc" and following[:1].islower()


def _looks_like_code(paragraph: str) -> bool:
    lines = [line for line in paragraph.split("\n") if line.strip()]
    if paragraph.lstrip().startswith(">>>"):
        return True
    if len(lines) < 2:
        return False
    code_like = sum(
        bool(_CODE_LINE.match(line) or _CODE_END.search(line.rstrip())) for line in lines
    )
    return code_like * 2 >= len(lines)


def _code_units(text: str, start: int, end: int) -> list[Unit]:
    """A code paragraph as one unit, or runs of whole lines when it is long."""
    if end - start <= MAX_CODE_CHARS:
        return [Unit(start, end, code=True)]
    units: list[Unit] = []
    begin = start
    cursor = start
    while cursor < end:
        newline = text.find("\n", cursor, end)
        line_end = end if newline == -1 else newline
        if line_end - begin > MAX_CODE_CHARS and cursor > begin:
            units.append(Unit(*_trim(text, begin, cursor), code=True))
            begin = cursor
        cursor = line_end + 1
    unit_start, unit_end = _trim(text, begin, end)
    if unit_start < unit_end:
        units.append(Unit(unit_start, unit_end, code=True))
    return [u for u in units if u.start < u.end]
