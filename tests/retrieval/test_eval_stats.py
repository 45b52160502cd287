"""Bootstrap intervals, paired differences, page-aware scoring and splits of the evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidRequest
from retrieval.eval_stats import (
    bootstrap_mean,
    difference_intervals,
    format_intervals,
    intervals_json,
    metric_intervals,
    paired_difference,
    question_scores,
)
from retrieval.evaluation import (
    EvalQuestion,
    QuestionResult,
    evaluate,
    first_rank,
    load_questions,
    result_key,
    same_source,
    select,
)


def result(qid: str, rank: int | None, split: str = "") -> QuestionResult:
    return QuestionResult(qid, "p", "fact", rank, [], split=split)


def test_bootstrap_is_deterministic_for_a_seed_and_brackets_the_mean() -> None:
    values = [0.0, 1.0] * 50
    first = bootstrap_mean(values, resamples=2000, seed=7)
    assert first == bootstrap_mean(values, resamples=2000, seed=7)
    assert first.estimate == 0.5
    # Binomial standard error at n=100 is 0.05: the 95% interval is about 0.5 +- 0.1.
    assert 0.38 < first.low < 0.45
    assert 0.55 < first.high < 0.62
    reciprocal_ranks = [1 / r for r in range(1, 38)]  # many distinct means: seeds differ
    assert bootstrap_mean(reciprocal_ranks, seed=8) != bootstrap_mean(reciprocal_ranks, seed=9)
    assert str(first).startswith("0.500 [0.4")


def test_bootstrap_of_a_constant_has_no_width_and_empty_input_is_refused() -> None:
    interval = bootstrap_mean([1.0] * 30, resamples=500, seed=0)
    assert (interval.estimate, interval.low, interval.high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="at least one question"):
        bootstrap_mean([])
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_mean([1.0], resamples=0)


def test_paired_difference_is_tight_where_runs_agree() -> None:
    same = np.array([0.0, 1.0, 1.0, 0.0] * 10)
    zero = paired_difference(same, same, seed=1)
    assert (zero.estimate, zero.low, zero.high) == (0.0, 0.0, 0.0)
    assert not zero.excludes_zero()
    better = same.copy()
    better[[0, 3, 4 * 2, 4 * 3 + 3, 4 * 4, 4 * 5 + 3, 4 * 6, 4 * 7 + 3]] = 1.0  # 8 of 40 won
    gain = paired_difference(better, same, seed=1)
    assert gain.estimate == pytest.approx(8 / 40)
    assert gain.low > 0  # eight wins and no losses: not noise
    assert gain.excludes_zero()
    # The unpaired intervals overlap although the paired one excludes zero.
    assert bootstrap_mean(better, seed=1).low < bootstrap_mean(same, seed=1).high
    with pytest.raises(ValueError, match="same questions"):
        paired_difference([1.0, 0.0], [1.0])


def test_question_scores_and_metric_intervals_follow_the_ranks() -> None:
    results = [result("a", 1), result("b", 3), result("c", 6), result("d", None)]
    scores = question_scores(results)
    assert scores["hit@1"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert scores["hit@5"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert scores["mrr@10"].tolist() == pytest.approx([1.0, 1 / 3, 1 / 6, 0.0])
    intervals = metric_intervals(results, resamples=300, seed=0)
    assert intervals["hit@5"].estimate == 0.5
    assert intervals["mrr@10"].estimate == pytest.approx((1 + 1 / 3 + 1 / 6) / 4)
    for interval in intervals.values():
        assert interval.low <= interval.estimate <= interval.high


def test_difference_intervals_need_the_same_questions() -> None:
    ours = [result("a", 1), result("b", 1)]
    theirs = [result("a", 2), result("b", 1)]
    diff = difference_intervals(ours, theirs, resamples=200)
    assert diff["hit@1"].estimate == 0.5
    assert diff["hit@5"].estimate == 0.0
    with pytest.raises(ValueError, match="same questions"):
        difference_intervals(ours, list(reversed(theirs)))


def test_pages_of_a_pdf_are_told_apart() -> None:
    assert result_key({"source": "guide.pdf", "page": 31}) == "guide.pdf#page=31"
    assert result_key({"source": "library/os.html"}) == "library/os.html"
    assert same_source("guide.pdf#page=31", "guide.pdf#page=31")
    assert not same_source("guide.pdf#page=3", "guide.pdf#page=31")
    assert same_source("guide.pdf#page=3", "guide.pdf")  # a page-less question: any page
    assert not same_source("guide.pdf", "guide.pdf#page=3")
    retrieved = ["guide.pdf#page=30", "guide.pdf#page=32", "guide.pdf#page=31"]
    assert first_rank(retrieved, "guide.pdf#page=31") == 3
    assert first_rank(retrieved, "guide.pdf") == 1


def test_splits_are_read_selected_and_reported(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "question": "qa", "source": "p1", "split": "tune", "corpus": "c"},
        {"id": "b", "question": "qb", "source": "p2", "split": "confirm", "corpus": "c"},
        {"id": "c", "question": "qc", "source": "p3", "split": "confirm", "corpus": "c"},
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    questions = load_questions(path)
    assert questions[0] == EvalQuestion("a", "qa", "p1", [], "", "tune", "c")
    assert [q.id for q in select(questions, "confirm")] == ["b", "c"]
    assert select(questions, None) == questions
    with pytest.raises(InvalidRequest, match="no question has split 'dev'"):
        select(questions, "dev")
    found = {"qa": ["p1"], "qb": ["x", "p2"], "qc": ["x"]}
    report = evaluate(questions, lambda text: found[text], label="run")
    assert report.by_split["tune"].hit_at_1 == 1.0
    assert report.by_split["confirm"].mrr_at_10 == pytest.approx(0.25)
    assert set(report.to_json()["by_split"]) == {"confirm", "tune"}
    table = format_intervals([report], resamples=100)
    assert [line.split()[1] for line in table.splitlines()[2:]] == ["all", "confirm", "tune"]
    data = intervals_json(report, resamples=100)
    assert data["tune"]["hit@1"] == {"estimate": 1.0, "low": 1.0, "high": 1.0}
    assert data["all"]["hit@5"]["estimate"] == pytest.approx(2 / 3)
