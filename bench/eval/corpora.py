"""The three retrieval evaluation corpora: which files count, their text, what ``source`` means.

Stdlib only (plus ``pypdf`` for the PDF), so the verifier runs without the project's models.
Defined in ``bench/eval/README.md``:

* ``python_docs``: Debian's ``python3.11-doc`` HTML, the 369 pages of ``bench/corpus.py``;
  a question's source is the page path relative to the doc root (``library/heapq.html``).
* ``debian_reference``: ``debian-reference-en``'s PDF (261 pages); a question's source is
  ``debian-reference.en.pdf#page=N`` with ``N`` the 1-based physical page of the PDF.
* ``postgresql``: ``postgresql-doc-15`` HTML, the 281 reference pages named
  ``sql-*.html`` (minus the ``sql-commands.html`` table of contents), ``app-*.html``,
  ``runtime-config-*.html``, ``datatype-*.html`` and ``functions-*.html``; a question's source
  is the file name (``sql-vacuum.html``).

Usage::

    from bench.eval.corpora import CORPORA
    corpus = CORPORA["postgresql"]
    files = corpus.files()              # [(path, source), ...] sorted by source
    texts = corpus.page_texts()         # {source: text} as the verifier reads it
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE_MARK = "#page="

_BLOCK_TAGS = {
    "p", "div", "li", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "tr", "td", "th",
    "br", "section", "table",
}  # fmt: skip
_SPACE = re.compile(r"\s+")


class _HTMLText(HTMLParser):
    """Text of an HTML page: inside the ``keep`` div if given, minus ``drop`` divs and scripts.

    ``keep`` and ``drop`` are predicates on a ``<div>``'s attributes.
    """

    def __init__(
        self,
        keep: Callable[[dict[str, str | None]], bool] | None,
        drop: Callable[[dict[str, str | None]], bool],
    ) -> None:
        super().__init__(convert_charrefs=True)
        self.keep, self.drop = keep, drop
        self.parts: list[str] = []
        self._skip = 0  # inside script/style
        self._div_depth = 0
        self._kept_at: int | None = None if keep else 0
        self._dropped_at: int | None = None

    def _active(self) -> bool:
        return self._kept_at is not None and self._dropped_at is None and not self._skip

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "div":
            self._div_depth += 1
            found = dict(attrs)
            if self._kept_at is None and self.keep is not None and self.keep(found):
                self._kept_at = self._div_depth
            elif self._dropped_at is None and self.drop(found):
                self._dropped_at = self._div_depth

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        if tag in _BLOCK_TAGS and self._active():
            self.parts.append("\n")
        if tag == "div":
            if self._dropped_at == self._div_depth:
                self._dropped_at = None
            elif self.keep is not None and self._kept_at == self._div_depth:
                self._kept_at = None
            self._div_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._active():
            self.parts.append(data)


def _classes(attrs: dict[str, str | None]) -> list[str]:
    return (attrs.get("class") or "").split()


def sphinx_body_text(path: Path) -> str:
    """Text of a Sphinx page's ``<div class="body" role="main">``, without ``¶`` signs."""
    parser = _HTMLText(
        keep=lambda a: "body" in _classes(a) and a.get("role") == "main", drop=lambda a: False
    )
    parser.feed(path.read_text(encoding="utf-8"))
    return "".join(parser.parts).replace("\u00b6", "")


def docbook_body_text(path: Path) -> str:
    """Text of a PostgreSQL DocBook page: ``<body>`` minus the navigation header and footer."""
    chrome = {"navheader", "navfooter"}
    parser = _HTMLText(keep=None, drop=lambda a: bool(chrome & set(_classes(a))))
    parser.feed(path.read_text(encoding="utf-8"))
    return "".join(parser.parts)


def pdf_page_texts(path: Path) -> dict[int, str]:
    """Text of each page of a PDF (1-based page number), as ``pypdf`` extracts it."""
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    return {n: page.extract_text() or "" for n, page in enumerate(reader.pages, start=1)}


def normalize(text: str) -> str:
    """Case-fold and collapse whitespace runs to one space (how HTML phrases are matched)."""
    return _SPACE.sub(" ", text).strip().casefold()


def squeeze(text: str) -> str:
    """Case-fold and drop all whitespace (how PDF phrases are matched: pypdf loses spaces)."""
    return _SPACE.sub("", text).casefold()


@dataclass(frozen=True)
class Corpus:
    """One corpus: where it lives, which files count, how its text and sources are read.

    Attributes:
        name: Short name, also the questions file's stem (``bench/eval/NAME.jsonl``).
        package: The Debian package that ships it.
        root: The folder (HTML) or file (PDF) it lives in.
        expected_pages: How many pages count (a check that the package is the one described).
        kind: ``html`` or ``pdf``.
    """

    name: str
    package: str
    root: Path
    expected_pages: int
    kind: str

    @property
    def questions_path(self) -> Path:
        """The corpus's questions file."""
        return HERE / f"{self.name}.jsonl"

    def installed(self) -> bool:
        """Whether the package's files are where the definition expects them."""
        return self.root.exists()

    def files(self) -> list[tuple[Path, str]]:
        """The files to ingest as ``(path, source)``; for the PDF, one file named by its name."""
        if self.kind == "pdf":
            return [(self.root, self.root.name)]
        return _HTML_FILES[self.name](self.root)

    def page_texts(self) -> dict[str, str]:
        """Every page's text by source, as the verifier reads it."""
        if self.kind == "pdf":
            return {
                page_source(self.root.name, n): text
                for n, text in pdf_page_texts(self.root).items()
            }
        reader = sphinx_body_text if self.name == "python_docs" else docbook_body_text
        return {source: reader(path) for path, source in self.files()}

    def matcher(self) -> Callable[[str], str]:
        """The normalisation phrases and page text are compared under."""
        return squeeze if self.kind == "pdf" else normalize


def page_source(source: str, page: int | None) -> str:
    """The key a retrieved chunk is scored by: its source, plus ``#page=N`` for paged files."""
    return source if page is None else f"{source}{PAGE_MARK}{page}"


# Salt of the split hash: picked once, before any retrieval ran, as the first of a few
# candidates that put 45-55 % of each corpus's questions and pages in each half.
SPLIT_SALT = "split-3"


def split_of(corpus: str, source: str) -> str:
    """``tune`` or ``confirm``, by a hash of the source page, so a page's questions stay together.

    The half of a page never changes when questions or pages are added, so a confirming half
    stays unseen by whoever tunes on the other.
    """
    digest = hashlib.sha256(f"{SPLIT_SALT}:{corpus}:{source}".encode()).digest()
    return "tune" if digest[0] % 2 == 0 else "confirm"


def _python_files(root: Path) -> list[tuple[Path, str]]:
    files: list[tuple[Path, str]] = []
    for folder in ("library", "tutorial", "reference", "howto", "faq"):
        for path in sorted((root / folder).glob("*.html")):
            if path.name != "index.html":
                files.append((path, f"{folder}/{path.name}"))
    return sorted(files, key=lambda pair: pair[1])


POSTGRES_PATTERNS = ("sql-*.html", "app-*.html", "runtime-config-*.html", "datatype-*.html")
POSTGRES_PATTERNS += ("functions-*.html",)
POSTGRES_EXCLUDED = ("sql-commands.html",)


def _postgres_files(root: Path) -> list[tuple[Path, str]]:
    chosen = {p for pattern in POSTGRES_PATTERNS for p in root.glob(pattern) if p.is_file()}
    return sorted((p, p.name) for p in chosen if p.name not in POSTGRES_EXCLUDED)


_HTML_FILES: dict[str, Callable[[Path], list[tuple[Path, str]]]] = {
    "python_docs": _python_files,
    "postgresql": _postgres_files,
}

_ENV = os.environ.get
CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        Corpus(
            "python_docs",
            "python3.11-doc",
            Path(_ENV("RAG_BENCH_DOC_ROOT", "/usr/share/doc/python3.11/html")),
            369,
            "html",
        ),
        Corpus(
            "debian_reference",
            "debian-reference-en",
            Path(
                _ENV(
                    "RAG_BENCH_DEBIAN_REFERENCE",
                    "/usr/share/debian-reference/debian-reference.en.pdf",
                )
            ),
            261,
            "pdf",
        ),
        Corpus(
            "postgresql",
            "postgresql-doc-15",
            Path(_ENV("RAG_BENCH_POSTGRES_DOC_ROOT", "/usr/share/doc/postgresql-doc-15/html")),
            281,
            "html",
        ),
    )
}


def spread_sample(
    files: list[tuple[Path, str]], wanted: set[str], others: int
) -> list[tuple[Path, str]]:
    """The ``wanted`` sources' files plus ``others`` of the rest, evenly spread (every k-th).

    A smaller haystack that still spans the corpus, for exploring on a slow machine.
    """
    rest = [f for f in files if f[1] not in wanted]
    step = max(1, len(rest) // max(1, others))
    sample = {f[1] for f in rest[::step][:others]}
    return [f for f in files if f[1] in wanted or f[1] in sample]
