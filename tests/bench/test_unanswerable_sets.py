"""The unanswerable question sets name nothing their corpus holds (real installed corpora)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.eval.corpora import CORPORA
from bench.verify_unanswerable import check

pytestmark = pytest.mark.integration

EVAL = Path(__file__).resolve().parents[2] / "bench" / "eval"


@pytest.mark.parametrize("name", ["debian_reference", "postgresql"])
def test_no_key_term_occurs_in_the_corpus_and_halves_balance(name: str) -> None:
    corpus = CORPORA[name]
    if not corpus.installed():
        pytest.skip(f"{corpus.root} is missing: apt-get install {corpus.package}")
    path = EVAL / f"unanswerable_{name}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 16
    assert {r["corpus"] for r in rows} == {name}
    assert not any(r["answerable"] for r in rows)
    assert sum(r["split"] == "tune" for r in rows) == len(rows) // 2
    assert check(path) == 0


def test_a_term_the_corpus_holds_is_reported(tmp_path: Path) -> None:
    corpus = CORPORA["postgresql"]
    if not corpus.installed():
        pytest.skip(f"{corpus.root} is missing: apt-get install {corpus.package}")
    row = {
        "id": "x1",
        "question": "How do I VACUUM?",
        "key_terms": ["VACUUM"],
        "answerable": False,
        "corpus": "postgresql",
        "split": "tune",
    }
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    assert check(path) == 1
