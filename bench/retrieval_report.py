"""The markdown and JSON of ``bench/bench_retrieval.py``: metrics with intervals, per corpus.

For each corpus: every run's hit@1, hit@5 and MRR@10 over all questions and per half (``tune``,
``confirm``) with percentile-bootstrap 95% intervals (``retrieval.eval_stats``), then each of
our runs minus LangChain's, per half, with paired-bootstrap intervals. The closing table holds
issue #24's test: on the confirming half of every corpus, the shipping default must beat
LangChain on hit@1 and MRR@10 and not lose on hit@5, outside the interval of the difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from retrieval.eval_stats import (
    METRICS,
    Interval,
    difference_intervals,
    intervals_json,
    metric_intervals,
    split_results,
)
from retrieval.evaluation import EvalReport

SPLITS: tuple[str | None, ...] = (None, "tune", "confirm")


@dataclass
class Run:
    """One system and setting evaluated on one corpus.

    Attributes:
        system: ``ragserver`` or ``langchain``.
        setting: Chunking (and for LangChain, the loader) in words.
        mode: Our search mode (``hybrid``, ``dense``, ...); ``dense`` for LangChain.
        chunks: Chunks indexed.
        report: The evaluation (per question results included).
        ingest_seconds: Loading, chunking, embedding and storing every page.
        index_seconds: Building the BM25 index (ours) or the FAISS index (LangChain).
        query_ms: Mean search time per question.
        default: This is the shipping default (its mode and settings).
        notes: What the reader must know (cached embeddings...).
        extra: Anything else for the JSON (a weight sweep's metrics...).
    """

    system: str
    setting: str
    mode: str
    chunks: int
    report: EvalReport
    ingest_seconds: float
    index_seconds: float
    query_ms: float
    default: bool = False
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def name(self) -> str:
        """How tables name the run."""
        if self.label:
            return self.label
        if self.system == "langchain":
            return "LangChain"
        return f"ours {self.mode}{' (default)' if self.default else ''}"


def _cell(interval: Interval, difference: bool = False) -> str:
    if not difference:
        return str(interval)
    star = "*" if interval.excludes_zero() else ""
    return f"{interval.estimate:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}]{star}"


def halves(report: EvalReport) -> list[str | None]:
    """All questions (None) then each half present; just the half when only one is."""
    present = [s for s in SPLITS[1:] if any(r.split == s for r in report.results)]
    return present if len(present) == 1 else [None, *present]


def corpus_tables(corpus: str, runs: Sequence[Run], resamples: int, seed: int) -> list[str]:
    """The metrics table and the differences-to-LangChain table of one corpus."""
    lines = [
        f"### {corpus}",
        "",
        "| run | chunking | chunks | half | n | hit@1 | hit@5 | MRR@10 | ingest s | query ms |",
        "|---|---|---:|---|---:|---|---|---|---:|---:|",
    ]
    for run in runs:
        shown = halves(run.report)
        for split in shown:
            results = split_results(run.report, split)
            cells = metric_intervals(results, resamples, seed)
            first = split == shown[0]
            lines.append(
                f"| {run.name if first else ''} | {run.setting if first else ''} | "
                f"{run.chunks if first else ''} | {split or 'all'} | {len(results)} | "
                + " | ".join(_cell(cells[m]) for m in METRICS)
                + f" | {f'{run.ingest_seconds:.0f}' if first else ''} | "
                f"{f'{run.query_ms:.0f}' if first else ''} |"
            )
    lines += differences(runs, "langchain", resamples, seed)
    lines += differences(runs, "old_default", resamples, seed)
    return lines


def _reference(runs: Sequence[Run], against: str) -> Run | None:
    if against == "langchain":
        return next((r for r in runs if r.system == "langchain"), None)
    return next((r for r in runs if r.extra.get("old_default")), None)


def differences(runs: Sequence[Run], against: str, resamples: int, seed: int) -> list[str]:
    """Each of our runs minus LangChain (``langchain``) or the shipping default minus the old
    default (``old_default``), per half, with paired-bootstrap intervals."""
    baseline = _reference(runs, against)
    if baseline is None:
        return []
    title = (
        "Ours minus LangChain"
        if against == "langchain"
        else "Shipping default minus the old default"
    )
    lines = [
        "",
        f"{title}, paired bootstrap 95% interval (`*`: the interval excludes 0):",
        "",
        "| run | half | Δ hit@1 | Δ hit@5 | Δ MRR@10 |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        if (
            run is baseline
            or run.system == "langchain"
            or (against == "old_default" and not run.default)
        ):
            continue
        shown = halves(run.report)
        for split in shown:
            ours, theirs = split_results(run.report, split), split_results(baseline.report, split)
            diff = difference_intervals(ours, theirs, resamples, seed)
            lines.append(
                f"| {run.name if split == shown[0] else ''} | {split or 'all'} | "
                + " | ".join(_cell(diff[m], difference=True) for m in METRICS)
                + " |"
            )
    return lines


def verdict_table(by_corpus: dict[str, list[Run]], resamples: int, seed: int) -> list[str]:
    """Issue #24's test on the confirming halves: default minus LangChain, and whether it passes."""
    lines = [
        "| corpus | n | Δ hit@1 | Δ hit@5 | Δ MRR@10 | default beats LangChain? |",
        "|---|---:|---|---|---|---|",
    ]
    for corpus, runs in by_corpus.items():
        default = next((r for r in runs if r.default), None)
        baseline = next((r for r in runs if r.system == "langchain"), None)
        if default is None or baseline is None:
            continue
        ours = split_results(default.report, "confirm")
        if not ours:
            continue
        diff = difference_intervals(
            ours, split_results(baseline.report, "confirm"), resamples, seed
        )
        passed = diff["hit@1"].low > 0 and diff["mrr@10"].low > 0 and diff["hit@5"].high >= 0
        lines.append(
            f"| {corpus} | {len(ours)} | "
            + " | ".join(_cell(diff[m], difference=True) for m in METRICS)
            + f" | {'yes' if passed else 'no'} |"
        )
    return lines


def old_default_table(by_corpus: dict[str, list[Run]], resamples: int, seed: int) -> list[str]:
    """On the confirming halves: the shipping default minus the default before #24."""
    lines = [
        "| corpus | n | Δ hit@1 | Δ hit@5 | Δ MRR@10 |",
        "|---|---:|---|---|---|",
    ]
    for corpus, runs in by_corpus.items():
        default = next((r for r in runs if r.default), None)
        old = _reference(runs, "old_default")
        if default is None or old is None or not split_results(default.report, "confirm"):
            continue
        ours = split_results(default.report, "confirm")
        diff = difference_intervals(ours, split_results(old.report, "confirm"), resamples, seed)
        lines.append(
            f"| {corpus} | {len(ours)} | "
            + " | ".join(_cell(diff[m], difference=True) for m in METRICS)
            + " |"
        )
    return lines if len(lines) > 2 else []


def render(
    by_corpus: dict[str, list[Run]], header: Sequence[str], resamples: int, seed: int
) -> str:
    """The whole markdown report: header lines, the verdict, then one section per corpus."""
    lines = [*header, "", "## Confirming halves: shipping default minus LangChain", ""]
    lines += verdict_table(by_corpus, resamples, seed)
    lines += [
        "",
        "Passing needs the lower bound of Δ hit@1 and Δ MRR@10 above 0 and the upper bound of "
        "Δ hit@5 at or above 0 (issue #24, 'Done when').",
        "",
    ]
    old = old_default_table(by_corpus, resamples, seed)
    if old:
        lines += [
            "## Confirming halves: shipping default minus the default before #24",
            "",
            *old,
            "",
        ]
    lines += [
        "## Per corpus",
        "",
    ]
    for corpus, runs in by_corpus.items():
        lines += corpus_tables(corpus, runs, resamples, seed)
        notes = sorted({f"{r.name}: {r.notes}" for r in runs if r.notes})
        lines += ["", *(f"- {note}" for note in notes), ""]
    return "\n".join(lines)


def to_json(by_corpus: dict[str, list[Run]], resamples: int, seed: int) -> dict[str, Any]:
    """Every run of every corpus: settings, timings, metrics, intervals, per question results."""
    return {
        corpus: [
            {
                "system": r.system,
                "setting": r.setting,
                "mode": r.mode,
                "default": r.default,
                "chunks": r.chunks,
                "ingest_seconds": r.ingest_seconds,
                "index_seconds": r.index_seconds,
                "query_ms": r.query_ms,
                "notes": r.notes,
                **r.extra,
                **r.report.to_json(intervals=intervals_json(r.report, resamples, seed)),
            }
            for r in runs
        ]
        for corpus, runs in by_corpus.items()
    }
