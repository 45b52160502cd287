"""Check the retrieval evaluation sets against the installed Debian documentation packages.

Usage::

    python bench/eval/verify.py [python_docs debian_reference postgresql]

For every question of ``bench/eval/CORPUS.jsonl``: the fields are present and typed, ids are
unique, ``kind`` is one of fact/howto/definition/comparison, the ``source`` is a page of the
corpus as ``bench/eval/README.md`` defines it, every ``answer_contains`` phrase occurs in that
page's text (case-folded, whitespace collapsed; for the PDF, whitespace removed, since pypdf
drops many spaces), no phrase appears verbatim in the question, and ``split`` is the one the
page's hash gives (``corpora.split_of``), so a page's questions all sit in one half. Also checks
that ``corpus`` names the file's corpus and that the corpus has the number of pages the
README states. Exits non-zero on any problem.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.eval.corpora import CORPORA, Corpus, split_of  # noqa: E402

KINDS = {"fact", "howto", "definition", "comparison"}
SPLITS = {"tune", "confirm"}
REQUIRED = {"id": str, "question": str, "source": str, "answer_contains": list, "kind": str}


@dataclass
class Verdict:
    """What checking one corpus's questions found."""

    corpus: str
    questions: int = 0
    problems: list[str] = field(default_factory=list)
    questions_by_split: Counter[str] = field(default_factory=Counter)
    pages_by_split: dict[str, set[str]] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """One line: counts per split (questions and pages) and per kind."""
        pages = {s: len(p) for s, p in sorted(self.pages_by_split.items())}
        return (
            f"{self.corpus}: {self.questions} questions, by split {dict(self.questions_by_split)}"
            f", pages by split {pages}, kinds {dict(self.kinds)}"
        )


def read_rows(path: Path) -> list[tuple[int, dict[str, object] | None, str]]:
    """The file's non-blank lines as ``(line number, object or None, error)``."""
    rows: list[tuple[int, dict[str, object] | None, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            rows.append((number, None, f"line {number}: not JSON ({exc})"))
            continue
        if not isinstance(value, dict):
            rows.append((number, None, f"line {number}: not a JSON object"))
        else:
            rows.append((number, value, ""))
    return rows


def check_row(row: dict[str, object], corpus: Corpus, texts: dict[str, str]) -> list[str]:
    """The problems of one question (empty when it is sound)."""
    qid = str(row.get("id", "?"))
    problems = [
        f"{qid}: field {name!r} missing or not a {kind.__name__}"
        for name, kind in REQUIRED.items()
        if not isinstance(row.get(name), kind)
    ]
    if problems:
        return problems
    if row["kind"] not in KINDS:
        problems.append(f"{qid}: kind {row['kind']!r} is not one of {sorted(KINDS)}")
    source, question = str(row["source"]), str(row["question"])
    if row.get("corpus") != corpus.name:
        problems.append(f"{qid}: corpus {row.get('corpus')!r}, the file is {corpus.name!r}")
    expected = split_of(corpus.name, source)
    if row.get("split") != expected:
        problems.append(f"{qid}: split {row.get('split')!r}, the page's hash gives {expected!r}")
    if source not in texts:
        return [*problems, f"{qid}: source {source!r} is not a page of {corpus.name}"]
    match = corpus.matcher()
    page = match(texts[source])
    phrases = row["answer_contains"]
    assert isinstance(phrases, list)
    if not phrases or not all(isinstance(p, str) and p.strip() for p in phrases):
        problems.append(f"{qid}: answer_contains must hold non-empty strings")
        return problems
    for phrase in phrases:
        if match(phrase) not in page:
            problems.append(f"{qid}: {phrase!r} does not occur in {source}")
        if match(phrase) in match(question):
            problems.append(f"{qid}: the question gives away {phrase!r}")
    return problems


def verify(corpus: Corpus, path: Path | None = None) -> Verdict:
    """Check one corpus's questions file (its default path unless ``path`` is given)."""
    verdict = Verdict(corpus.name)
    texts = corpus.page_texts()
    if len(texts) != corpus.expected_pages:
        verdict.problems.append(
            f"{corpus.name}: {len(texts)} pages, the README defines {corpus.expected_pages} "
            f"(is {corpus.package} the version the README names?)"
        )
    ids: Counter[str] = Counter()
    for _number, row, error in read_rows(path or corpus.questions_path):
        if row is None:
            verdict.problems.append(error)
            continue
        verdict.questions += 1
        ids[str(row.get("id"))] += 1
        verdict.problems += check_row(row, corpus, texts)
        split = str(row.get("split"))
        verdict.questions_by_split[split] += 1
        verdict.pages_by_split.setdefault(split, set()).add(str(row.get("source")))
        verdict.kinds[str(row.get("kind"))] += 1
    verdict.problems += [f"id {qid} is used {n} times" for qid, n in ids.items() if n > 1]
    halves = verdict.pages_by_split
    both = halves.get("tune", set()) & halves.get("confirm", set())
    verdict.problems += [f"page {p} is in both halves" for p in sorted(both)]
    verdict.problems += [f"split {s!r} is not tune/confirm" for s in sorted(halves.keys() - SPLITS)]
    return verdict


def main(argv: list[str] | None = None) -> int:
    names = argv if argv else list(CORPORA)
    unknown = [n for n in names if n not in CORPORA]
    if unknown:
        print(f"unknown corpus {unknown}; known: {sorted(CORPORA)}", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        corpus = CORPORA[name]
        if not corpus.installed():
            print(f"{name}: {corpus.root} is missing (apt-get install {corpus.package})")
            failed += 1
            continue
        verdict = verify(corpus)
        print(verdict.summary())
        for problem in verdict.problems:
            print(f"  FAIL {problem}")
        failed += bool(verdict.problems)
    print("OK" if not failed else f"{failed} corpus set(s) with problems")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
