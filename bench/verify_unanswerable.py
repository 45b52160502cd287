"""Check that the Python docs corpus does not answer the unanswerable question set.

Usage::

    .venv/bin/python bench/verify_unanswerable.py [bench/eval/unanswerable_python.jsonl]

Every question lists ``key_terms``: the names the question is about (another library,
language or tool). None of them may occur in the main text of any of the 369 corpus pages
(``bench/corpus.py``), compared case-insensitively at word boundaries; the script prints
each term found, with the pages holding it, and exits 1 if any is.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import corpus_files, load_questions, page_text  # noqa: E402

DEFAULT = Path(__file__).resolve().parent / "eval" / "unanswerable_python.jsonl"


def term_pattern(term: str) -> re.Pattern[str]:
    """Match ``term`` as a whole word (or symbol run), case-insensitively."""
    left = r"(?<!\w)" if term[:1].isalnum() else ""
    right = r"(?!\w)" if term[-1:].isalnum() else ""
    return re.compile(left + re.escape(term) + right, re.IGNORECASE)


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    questions = load_questions(path)
    pages = {source: page_text(p, source) for p, source in corpus_files()}
    found = 0
    for q in questions:
        for term in q["key_terms"]:
            pattern = term_pattern(term)
            hits = [source for source, text in pages.items() if pattern.search(text)]
            if hits:
                found += 1
                print(f"{q['id']}: {term!r} occurs in {len(hits)} pages: {', '.join(hits[:5])}")
    print(f"{len(questions)} questions, {len(pages)} pages, {found} key terms found in the corpus")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
