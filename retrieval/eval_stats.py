"""Bootstrap intervals for retrieval metrics, and paired intervals for differences between runs.

Each question contributes one score per metric (hit@1 and hit@5: 0 or 1; MRR@10: ``1 / rank``
or 0). A percentile bootstrap resamples the questions with replacement and takes the 2.5th and
97.5th percentiles of the resampled means. For a difference between two runs over the same
questions, the same resampled questions are used for both (a paired bootstrap: the interval
of the mean per-question difference), which is much tighter than comparing two separate
intervals when the runs agree on most questions. Resampling uses numpy's ``default_rng(seed)``,
so a given seed always gives the same interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrieval.evaluation import MRR_DEPTH, EvalReport, QuestionResult

METRICS = ("hit@1", "hit@5", "mrr@10")
RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with the bounds of its bootstrap interval."""

    estimate: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        """Whether the whole interval lies on one side of zero (a difference that is not noise)."""
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, float]:
        """The three numbers under their names."""
        return {"estimate": self.estimate, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def question_scores(results: Sequence[QuestionResult]) -> dict[str, np.ndarray]:
    """Each metric's score per question, in the results' order."""
    ranks = [r.rank for r in results]
    return {
        "hit@1": np.array([rank == 1 for rank in ranks], dtype=np.float64),
        "hit@5": np.array([rank is not None and rank <= 5 for rank in ranks], dtype=np.float64),
        "mrr@10": np.array(
            [1.0 / rank if rank is not None and rank <= MRR_DEPTH else 0.0 for rank in ranks],
            dtype=np.float64,
        ),
    }


def _resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    if n == 0:
        raise ValueError("a bootstrap needs at least one question")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _interval(values: np.ndarray, indices: np.ndarray, level: float) -> Interval:
    means = values[indices].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(values.mean()), float(low), float(high))


def bootstrap_mean(
    values: Sequence[float] | np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> Interval:
    """The mean of ``values`` with its percentile-bootstrap interval.

    Args:
        values: One score per question.
        resamples: How many resampled sets to draw.
        seed: Seed of the random generator (same seed, same interval).
        level: Coverage of the interval (0.95: the 2.5th to the 97.5th percentile).

    Raises:
        ValueError: no values, or fewer than one resample.
    """
    array = np.asarray(values, dtype=np.float64)
    return _interval(array, _resample_indices(len(array), resamples, seed), level)


def paired_difference(
    first: Sequence[float] | np.ndarray, second: Sequence[float] | np.ndarray, **options: Any
) -> Interval:
    """Mean of ``first - second`` over the same questions, with a paired bootstrap interval.

    Resampling the per-question differences resamples both runs' questions together.
    ``options`` are ``bootstrap_mean``'s (``resamples``, ``seed``, ``level``).

    Raises:
        ValueError: the two have different lengths, or are empty.
    """
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same questions ({len(a)} vs {len(b)})")
    return bootstrap_mean(a - b, **options)


def split_results(report: EvalReport, split: str | None) -> list[QuestionResult]:
    """The report's results of one split (all of them for None)."""
    return [r for r in report.results if split is None or r.split == split]


def metric_intervals(
    results: Sequence[QuestionResult], resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, Interval]:
    """hit@1, hit@5 and MRR@10 of ``results``, each with its bootstrap interval."""
    scores = question_scores(results)
    return {name: bootstrap_mean(scores[name], resamples, seed) for name in METRICS}


def difference_intervals(
    ours: Sequence[QuestionResult],
    theirs: Sequence[QuestionResult],
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Interval]:
    """Each metric's difference ``ours - theirs`` with its paired bootstrap interval.

    Raises:
        ValueError: the two runs did not answer the same questions in the same order.
    """
    if [r.id for r in ours] != [r.id for r in theirs]:
        raise ValueError("the two runs must cover the same questions in the same order")
    a, b = question_scores(ours), question_scores(theirs)
    return {
        name: paired_difference(a[name], b[name], resamples=resamples, seed=seed)
        for name in METRICS
    }


def intervals_json(
    report: EvalReport, resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, dict[str, dict[str, float]]]:
    """The report's intervals, overall (``all``) and per split, ready for JSON."""
    splits = sorted({r.split for r in report.results if r.split})
    return {
        split or "all": {
            name: interval.as_dict()
            for name, interval in metric_intervals(
                split_results(report, split), resamples, seed
            ).items()
        }
        for split in [None, *splits]
        if split_results(report, split)
    }


def format_intervals(
    reports: Sequence[EvalReport], resamples: int = RESAMPLES, seed: int = 0
) -> str:
    """A fixed-width table: each report overall and per split, metrics with 95% intervals."""
    rows: list[tuple[str, str, int, dict[str, Interval]]] = []
    for report in reports:
        splits = sorted({r.split for r in report.results if r.split})
        for split in [None, *splits]:
            results = split_results(report, split)
            if results:
                intervals = metric_intervals(results, resamples, seed)
                rows.append((report.label, split or "all", len(results), intervals))
    width = max([len("run"), *(len(row[0]) for row in rows)])
    header = f"{'run':<{width}}  {'split':<7}  {'n':>4}  " + "  ".join(
        f"{name + ' [95% CI]':<22}" for name in METRICS
    )
    lines = [header, "-" * len(header)]
    for label, split, n, intervals in rows:
        cells = "  ".join(f"{str(intervals[name]):<22}" for name in METRICS)
        lines.append(f"{label:<{width}}  {split:<7}  {n:>4}  {cells}")
    return "\n".join(lines)
