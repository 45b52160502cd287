"""The retrieval evaluation sets (bench/eval/*.jsonl) hold against the installed doc packages.

The verifier's checks run on the real corpora: every phrase is in its source page, halves are
by page, counts and balance are as the README states. A broken copy of a file shows that each
check can fail. A corpus whose Debian package is missing skips with the package to install
(``scripts/system_deps.sh test`` installs all three).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.eval.corpora import CORPORA, Corpus, page_source, split_of
from bench.eval.verify import main, verify

pytestmark = pytest.mark.integration

MINIMUM = {"python_docs": 80, "debian_reference": 60, "postgresql": 60}


def installed(name: str) -> Corpus:
    corpus = CORPORA[name]
    if not corpus.installed():
        pytest.skip(f"{corpus.root} is missing: apt-get install {corpus.package}")
    return corpus


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_every_question_holds_against_its_page(name: str) -> None:
    verdict = verify(installed(name))
    assert verdict.problems == []
    assert verdict.questions >= MINIMUM[name]
    for split in ("tune", "confirm"):  # about half each, by questions and by pages
        assert 0.35 <= verdict.questions_by_split[split] / verdict.questions <= 0.65
        pages = sum(len(p) for p in verdict.pages_by_split.values())
        assert 0.35 <= len(verdict.pages_by_split[split]) / pages <= 0.65
    assert set(verdict.kinds) <= {"fact", "howto", "definition", "comparison"}


def test_the_sets_hold_at_least_200_questions() -> None:
    total = 0
    for corpus in CORPORA.values():
        with corpus.questions_path.open(encoding="utf-8") as handle:
            total += sum(1 for line in handle if line.strip())
    assert total >= 200


def test_the_verifier_reports_each_kind_of_fault(tmp_path: Path) -> None:
    corpus = installed("python_docs")
    good = json.loads(corpus.questions_path.read_text(encoding="utf-8").splitlines()[0])
    other_half = "confirm" if good["split"] == "tune" else "tune"
    rows = [
        good,
        {**good, "id": "bad-phrase", "answer_contains": ["no such phrase anywhere"]},
        {**good, "id": "bad-split", "split": other_half},
        {**good, "id": "bad-source", "source": "whatsnew/3.11.html"},
        {**good, "id": "leak", "question": f"Is it {good['answer_contains'][0]}?"},
        {**good, "id": "bad-kind", "kind": "opinion"},
        {**good, "id": "bad-corpus", "corpus": "postgresql"},
        good,  # a duplicate id
    ]
    path = tmp_path / "python_docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    problems = "\n".join(verify(corpus, path).problems)
    assert "bad-phrase: 'no such phrase anywhere' does not occur" in problems
    assert f"bad-split: split {other_half!r}" in problems
    assert "bad-source: source 'whatsnew/3.11.html' is not a page" in problems
    assert "leak: the question gives away" in problems
    assert "bad-kind: kind 'opinion'" in problems
    assert f"id {good['id']} is used 2 times" in problems
    assert "bad-corpus: corpus 'postgresql', the file is 'python_docs'" in problems
    assert "line 9: not JSON" in problems
    assert f"page {good['source']} is in both halves" in problems


def test_the_command_line_exits_non_zero_on_an_unknown_corpus(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["no_such_corpus"]) == 2
    assert "known:" in capsys.readouterr().err


def test_splits_depend_only_on_the_page() -> None:
    first = split_of("postgresql", "sql-vacuum.html")
    assert first == split_of("postgresql", "sql-vacuum.html") in {"tune", "confirm"}
    halves = {split_of("postgresql", f"page-{n}.html") for n in range(40)}
    assert halves == {"tune", "confirm"}
    assert page_source("debian-reference.en.pdf", 31) == "debian-reference.en.pdf#page=31"
    assert page_source("library/os.html", None) == "library/os.html"
