"""Check that a corpus does not answer its unanswerable question set.

Usage::

    .venv/bin/python bench/verify_unanswerable.py [bench/eval/unanswerable_python.jsonl ...]

Every question lists ``key_terms``: the names the question is about (another library,
language or tool). None of them may occur in the text of any page of the question's corpus
(its ``corpus`` field, a name of ``bench/eval/corpora.py``; without one, the 369 Python docs
pages of ``bench/corpus.py``), compared case-insensitively at word boundaries, or, for the
Debian Reference PDF whose extracted text loses spaces, as a substring with all whitespace
removed. The script prints each term found, with the pages holding it, and exits 1 if any is.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import corpus_files, load_questions, page_text  # noqa: E402
from bench.eval.corpora import CORPORA, squeeze  # noqa: E402

DEFAULT = Path(__file__).resolve().parent / "eval" / "unanswerable_python.jsonl"


def term_pattern(term: str) -> re.Pattern[str]:
    """Match ``term`` as a whole word (or symbol run), case-insensitively."""
    left = r"(?<!\w)" if term[:1].isalnum() else ""
    right = r"(?!\w)" if term[-1:].isalnum() else ""
    return re.compile(left + re.escape(term) + right, re.IGNORECASE)


def corpus_pages(name: str | None) -> tuple[dict[str, str], Callable[[str], Callable[[str], bool]]]:
    """The corpus's page texts and how a term is looked for in a page."""
    if name is None:
        pages = {source: page_text(p, source) for p, source in corpus_files()}
    else:
        pages = CORPORA[name].page_texts()
    if name is not None and CORPORA[name].kind == "pdf":
        pages = {source: squeeze(text) for source, text in pages.items()}
        return pages, lambda term: lambda text: squeeze(term) in text
    return pages, lambda term: lambda text: bool(term_pattern(term).search(text))


def check(path: Path) -> int:
    """Print the key terms of ``path``'s questions found in their corpus; return how many."""
    questions = load_questions(path)
    name = questions[0].get("corpus") if questions else None
    pages, finder = corpus_pages(name)
    found = 0
    for q in questions:
        for term in q["key_terms"]:
            occurs = finder(term)
            hits = [source for source, text in pages.items() if occurs(text)]
            if hits:
                found += 1
                print(f"{q['id']}: {term!r} occurs in {len(hits)} pages: {', '.join(hits[:5])}")
    print(
        f"{path.name}: {len(questions)} questions, {len(pages)} pages of {name or 'python_docs'}, "
        f"{found} key terms found in the corpus"
    )
    return found


def main() -> int:
    paths = [Path(a) for a in sys.argv[1:]] or [DEFAULT]
    return 1 if sum(check(path) for path in paths) else 0


if __name__ == "__main__":
    raise SystemExit(main())
