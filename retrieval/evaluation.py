"""Retrieval evaluation: hit@1, hit@5 and MRR@10 by source page, and answer containment.

The metrics follow the dev set's README (``/work/shared/eval/README.md``): retrieve the top
10 chunks; ``rank`` is the 1-based position of the first chunk whose source equals the
question's ``source`` (none if it is not in the top 10). hit@1 is the share with rank 1,
hit@5 with rank at most 5, MRR@10 the mean of ``1 / rank`` (0 without a rank). Answer
containment is the share of answers containing every ``answer_contains`` phrase, compared
case-insensitively with whitespace collapsed.

Sources of paged files (PDF) are compared by page: a chunk's key is its ``source`` plus
``#page=N`` (``result_key``), so a question whose ``source`` is ``guide.pdf#page=31`` is a hit
only on that page, while one whose ``source`` is plain ``guide.pdf`` is a hit on any page.
Questions may carry a ``split`` (``tune`` or ``confirm``) and a ``corpus``; the report breaks
the metrics down by split. Bootstrap intervals are in ``retrieval.eval_stats``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InvalidRequest

MRR_DEPTH = 10
PAGE_MARK = "#page="
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class EvalQuestion:
    """One question of an evaluation set (a line of the JSONL file)."""

    id: str
    question: str
    source: str
    answer_contains: list[str] = field(default_factory=list)
    kind: str = ""
    split: str = ""
    corpus: str = ""


@dataclass(frozen=True)
class QuestionResult:
    """How one question fared.

    Attributes:
        id: The question's id.
        source: The page that answers it.
        kind: The question's kind.
        rank: 1-based rank of the first retrieved chunk from ``source``, None if absent.
        retrieved: Source of each retrieved chunk, best first.
        answer: The generated answer (``--answer`` only).
        contains: The answer contains every expected phrase (``--answer`` only).
        split: The question's half of the set (``tune``/``confirm``), empty if none.
    """

    id: str
    source: str
    kind: str
    rank: int | None
    retrieved: list[str]
    answer: str | None = None
    contains: bool | None = None
    split: str = ""


@dataclass(frozen=True)
class Metrics:
    """Averages over a set of questions (shares in [0, 1])."""

    questions: int
    hit_at_1: float
    hit_at_5: float
    mrr_at_10: float
    answer_containment: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The metrics under the names the README uses."""
        out: dict[str, Any] = {
            "questions": self.questions,
            "hit@1": self.hit_at_1,
            "hit@5": self.hit_at_5,
            "mrr@10": self.mrr_at_10,
        }
        if self.answer_containment is not None:
            out["answer_containment"] = self.answer_containment
        return out


@dataclass(frozen=True)
class EvalReport:
    """The metrics of a run, by kind and by split, and per question."""

    label: str
    metrics: Metrics
    by_kind: dict[str, Metrics]
    results: list[QuestionResult]
    by_split: dict[str, Metrics] = field(default_factory=dict)

    def to_json(self, **context: Any) -> dict[str, Any]:
        """A JSON-ready dict: ``context`` (collection, mode...), metrics, by kind, results."""
        return {
            **context,
            "label": self.label,
            "metrics": self.metrics.as_dict(),
            "by_kind": {kind: m.as_dict() for kind, m in sorted(self.by_kind.items())},
            "by_split": {split: m.as_dict() for split, m in sorted(self.by_split.items())},
            "results": [asdict(r) for r in self.results],
        }


def load_questions(path: Path) -> list[EvalQuestion]:
    """Read a JSONL file of questions (``id``, ``question``, ``source`` required).

    ``answer_contains``, ``kind``, ``split`` and ``corpus`` are optional.

    Raises:
        InvalidRequest: a line is not JSON or lacks a required field.
    """
    questions: list[EvalQuestion] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                questions.append(
                    EvalQuestion(
                        id=str(row["id"]),
                        question=str(row["question"]),
                        source=str(row["source"]),
                        answer_contains=[str(p) for p in row.get("answer_contains", [])],
                        kind=str(row.get("kind", "")),
                        split=str(row.get("split", "")),
                        corpus=str(row.get("corpus", "")),
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidRequest(
                    f"{path}:{number}: expected a JSON object with id, question and source ({exc})"
                ) from exc
    return questions


def result_key(metadata: Mapping[str, Any]) -> str:
    """The key a retrieved chunk is scored by: its source, plus ``#page=N`` when it has a page."""
    source = str(metadata.get("source", ""))
    page = metadata.get("page")
    return source if page is None else f"{source}{PAGE_MARK}{page}"


def same_source(retrieved: str, source: str) -> bool:
    """Whether a retrieved key answers ``source``; a page-less source accepts any page."""
    if retrieved == source:
        return True
    return PAGE_MARK not in source and retrieved.split(PAGE_MARK, 1)[0] == source


def first_rank(retrieved: Sequence[str], source: str, depth: int = MRR_DEPTH) -> int | None:
    """Return the 1-based rank of the first ``source`` among the top ``depth``, or None."""
    for rank, got in enumerate(retrieved[:depth], start=1):
        if same_source(got, source):
            return rank
    return None


def select(questions: Sequence[EvalQuestion], split: str | None) -> list[EvalQuestion]:
    """The questions of one split (all of them when ``split`` is None).

    Raises:
        InvalidRequest: no question is in that split.
    """
    if split is None:
        return list(questions)
    chosen = [q for q in questions if q.split == split]
    if not chosen:
        found = sorted({q.split for q in questions if q.split})
        raise InvalidRequest(
            f"no question has split {split!r}; the file's splits: {found or 'none'}"
        )
    return chosen


def _collapse(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def answer_contains(answer: str, phrases: Sequence[str]) -> bool:
    """Whether ``answer`` contains every phrase, case-insensitively, whitespace collapsed."""
    text = _collapse(answer)
    return all(_collapse(phrase) in text for phrase in phrases)


def summarize(results: Sequence[QuestionResult]) -> Metrics:
    """Average the per-question results into the metrics."""
    n = len(results)
    if n == 0:
        return Metrics(0, 0.0, 0.0, 0.0)
    ranks = [r.rank for r in results]
    answered = [r.contains for r in results if r.contains is not None]
    return Metrics(
        questions=n,
        hit_at_1=sum(rank == 1 for rank in ranks) / n,
        hit_at_5=sum(rank is not None and rank <= 5 for rank in ranks) / n,
        mrr_at_10=sum(1.0 / rank for rank in ranks if rank is not None and rank <= 10) / n,
        answer_containment=sum(answered) / len(answered) if answered else None,
    )


def evaluate(
    questions: Sequence[EvalQuestion],
    retrieve: Callable[[str], Sequence[str]],
    answer: Callable[[str], str] | None = None,
    label: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Run every question and compute the metrics.

    Args:
        questions: The questions.
        retrieve: Returns the source of each retrieved chunk for a question, best first.
        answer: Returns the generated answer for a question; None skips containment.
        label: Names the run in tables.
        progress: Called with ``(done, total)`` after each question.
    """
    results: list[QuestionResult] = []
    for done, q in enumerate(questions, start=1):
        retrieved = [str(s) for s in retrieve(q.question)]
        text = answer(q.question) if answer is not None else None
        results.append(
            QuestionResult(
                id=q.id,
                source=q.source,
                kind=q.kind,
                rank=first_rank(retrieved, q.source),
                retrieved=retrieved,
                answer=text,
                contains=answer_contains(text, q.answer_contains) if text is not None else None,
                split=q.split,
            )
        )
        if progress is not None:
            progress(done, len(questions))
    kinds = sorted({r.kind for r in results if r.kind})
    by_kind = {kind: summarize([r for r in results if r.kind == kind]) for kind in kinds}
    splits = sorted({r.split for r in results if r.split})
    by_split = {split: summarize([r for r in results if r.split == split]) for split in splits}
    return EvalReport(label, summarize(results), by_kind, results, by_split)


def format_table(reports: Sequence[EvalReport]) -> str:
    """Render reports as a fixed-width table, one row per report."""
    with_answers = any(r.metrics.answer_containment is not None for r in reports)
    width = max([len("run"), *(len(r.label) for r in reports)])
    header = f"{'run':<{width}}  questions  hit@1  hit@5  MRR@10"
    if with_answers:
        header += "  answer"
    lines = [header, "-" * len(header)]
    for report in reports:
        m = report.metrics
        line = (
            f"{report.label:<{width}}  {m.questions:9d}  {m.hit_at_1:5.3f}  {m.hit_at_5:5.3f}"
            f"  {m.mrr_at_10:6.3f}"
        )
        if with_answers:
            shown = "-" if m.answer_containment is None else f"{m.answer_containment:.3f}"
            line += f"  {shown:>6}"
        lines.append(line)
    return "\n".join(lines)
