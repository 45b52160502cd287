"""The follow-up dev set (bench/eval/followups_python.jsonl) holds against the Python docs.

Each follow-up is checked as a retrieval question (``bench/eval/verify.py``): its phrases occur
verbatim in its page, the question does not give them away, its half is its page's hash; the
first question's page is a corpus page too.
"""

from __future__ import annotations

import json

import pytest

from bench.bench_conversations import PAIRS
from bench.eval.corpora import CORPORA
from bench.eval.verify import verify

pytestmark = pytest.mark.integration


def test_every_follow_up_holds_against_its_page() -> None:
    corpus = CORPORA["python_docs"]
    if not corpus.installed():
        pytest.skip(f"{corpus.root} is missing: apt-get install {corpus.package}")
    verdict = verify(corpus, PAIRS)
    assert verdict.problems == []
    assert verdict.questions >= 30
    assert verdict.questions_by_split["tune"] >= 15
    assert verdict.questions_by_split["confirm"] >= 15
    pages = corpus.page_texts()
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    assert all(row["first_source"] in pages for row in rows)
    assert all(row["first"].strip() and row["first"] != row["question"] for row in rows)
    assert {row["followup"] for row in rows} == {"pronoun", "ellipsis", "ordinal"}
