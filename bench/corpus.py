"""The retrieval dev corpus: the 369 Python 3.11 documentation pages and their text.

Defined in ``/work/shared/eval/README.md``: every ``*.html`` directly under ``library/``,
``tutorial/``, ``reference/``, ``howto/`` and ``faq/`` of the doc root, except each folder's
``index.html``. A page's source is its path relative to the doc root (``library/heapq.html``),
the same string ``ragserver ingest DOC_ROOT`` records, so metrics compare on it directly.

Reusable pieces (the ingestion-speed benchmark imports them too)::

    from bench.corpus import DOC_ROOT, corpus_files, page_text, load_questions
    files = corpus_files()              # [(path, source), ...], 369 pairs, sorted by source
    text = page_text(*files[0])         # the page's main-body text, headings on their own lines
    questions = load_questions()        # the 40 dev questions, as dicts
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DOC_ROOT = Path(os.environ.get("RAG_BENCH_DOC_ROOT", "/usr/share/doc/python3.11/html"))
QUESTIONS = Path(os.environ.get("RAG_BENCH_QUESTIONS", "/work/shared/eval/dev_questions.jsonl"))
FOLDERS = ("library", "tutorial", "reference", "howto", "faq")
EXPECTED_PAGES = 369


def corpus_files(doc_root: Path = DOC_ROOT) -> list[tuple[Path, str]]:
    """Return the corpus pages as ``(path, source)`` pairs, sorted by source.

    Args:
        doc_root: The HTML doc root (``/usr/share/doc/python3.11/html``).

    Raises:
        FileNotFoundError: the doc root or one of the five folders is missing
            (``apt-get install python3.11-doc``).
    """
    files: list[tuple[Path, str]] = []
    for folder in FOLDERS:
        directory = doc_root / folder
        if not directory.is_dir():
            raise FileNotFoundError(
                f"{directory} is missing; install the python3.11-doc package or point "
                "RAG_BENCH_DOC_ROOT at the Python 3.11 HTML docs"
            )
        for path in sorted(directory.glob("*.html")):
            if path.name != "index.html" and path.is_file():
                files.append((path, f"{folder}/{path.name}"))
    return sorted(files, key=lambda pair: pair[1])


def corpus_include_globs() -> list[str]:
    """Globs for ``ragserver ingest DOC_ROOT --include ... --exclude ...`` that pick the corpus.

    Returns the include globs; pair them with ``corpus_exclude_globs()``.
    """
    return [f"{folder}/*.html" for folder in FOLDERS]


def corpus_exclude_globs() -> list[str]:
    """Globs that drop the folders' ``index.html`` and anything in subfolders."""
    return [f"{folder}/index.html" for folder in FOLDERS] + [f"{folder}/*/*" for folder in FOLDERS]


def page_text(path: Path, source: str) -> str:
    """Return a page's main-body text as ragserver's HTML loader extracts it.

    The loader keeps ``<div role="main">`` and drops scripts, styles, navigation and ``¶``
    permalinks; here each section is written as its heading on a line of its own, then its
    text, sections separated by blank lines, so the result reads as the page does.
    """
    from ingest.limits import LoadLimits
    from ingest.loaders import load_file

    document = load_file(path, source, LoadLimits())
    parts: list[str] = []
    previous: tuple[str, ...] = ()
    for section in document.sections:
        if section.heading_path and section.heading_path != previous:
            parts.append(section.heading_path[-1])
        previous = section.heading_path
        parts.append(section.text)
    return "\n\n".join(parts)


def load_questions(path: Path = QUESTIONS) -> list[dict[str, Any]]:
    """Read a questions JSONL file (``id``, ``question``, ``source``, ...), skipping blanks."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


if __name__ == "__main__":
    pairs = corpus_files()
    print(f"{len(pairs)} pages (expected {EXPECTED_PAGES}) under {DOC_ROOT}")
    chars = sum(len(page_text(p, s)) for p, s in pairs)
    print(f"{chars} characters of main-body text")
