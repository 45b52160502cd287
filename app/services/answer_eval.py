"""Answer evaluation: containment, evidence, citations, abstention and time, per answer mode.

A question set mixes answerable questions (``answer_contains`` phrases a correct answer
mentions) and unanswerable ones (``"answerable": false``: the documents do not answer them).
For each answer:

* answer containment: the answer holds every expected phrase (answerable questions; an
  abstention counts as a miss), compared as ``evaluation.answer_contains`` does;
* evidence containment: the evidence sentences returned with the answer hold every phrase;
* citation: the answer cites at least one passage of its prompt as ``[n]`` (answers that
  did not abstain);
* false abstention: an answerable question answered "the documents do not say";
* false answer: an unanswerable question answered anyway;
* seconds: wall time of the whole answer (retrieval, evidence, generation).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InvalidRequest
from retrieval.evaluation import answer_contains

from .answers import AnswerResult


@dataclass(frozen=True)
class AnswerCase:
    """A question to answer: answerable with expected phrases, or not answerable."""

    id: str
    question: str
    answer_contains: list[str] = field(default_factory=list)
    answerable: bool = True
    split: str = ""


@dataclass(frozen=True)
class AnswerOutcome:
    """How one answer fared (``contains`` and ``evidence_contains`` are None if unanswerable)."""

    id: str
    answerable: bool
    answer: str
    answer_mode: str
    abstained: bool
    cited: bool
    contains: bool | None
    evidence_contains: bool | None
    confidence: float | None
    seconds: float


@dataclass(frozen=True)
class AnswerMetrics:
    """Shares in [0, 1] (None where a set has no question of that kind) and times."""

    questions: int
    answerable: int
    unanswerable: int
    answer_containment: float | None
    evidence_containment: float | None
    citation_rate: float | None
    false_abstention: float | None
    false_answer: float | None
    median_s: float
    mean_s: float


@dataclass(frozen=True)
class AnswerReport:
    """The metrics of one run (one answer mode) and its outcomes."""

    label: str
    metrics: AnswerMetrics
    outcomes: list[AnswerOutcome]

    def to_json(self, **context: Any) -> dict[str, Any]:
        """A JSON-ready dict: ``context``, the label, the metrics and every outcome."""
        return {
            **context,
            "label": self.label,
            "metrics": asdict(self.metrics),
            "outcomes": [asdict(o) for o in self.outcomes],
        }


def load_answer_cases(path: Path) -> list[AnswerCase]:
    """Read a JSONL set: ``id``, ``question``, and ``answer_contains`` or ``"answerable": false``.

    Raises:
        InvalidRequest: a line is not JSON, lacks ``id`` or ``question``, or an answerable
            question has no ``answer_contains``.
    """
    cases: list[AnswerCase] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                answerable = bool(row.get("answerable", True))
                phrases = [str(p) for p in row.get("answer_contains", [])]
                if answerable and not phrases:
                    raise ValueError("an answerable question needs answer_contains")
                split = str(row.get("split", ""))
                cases.append(
                    AnswerCase(str(row["id"]), str(row["question"]), phrases, answerable, split)
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise InvalidRequest(
                    f"{path}:{number}: expected a JSON object with id, question and "
                    f"answer_contains (or answerable: false) ({exc})"
                ) from exc
    return cases


def outcome_of(case: AnswerCase, result: AnswerResult, seconds: float) -> AnswerOutcome:
    """Score one answer."""
    evidence_text = " ".join(e.text for e in result.evidence)
    return AnswerOutcome(
        id=case.id,
        answerable=case.answerable,
        answer=result.answer,
        answer_mode=result.answer_mode,
        abstained=result.abstained,
        cited=any(c.cited for c in result.citations),
        contains=(
            not result.abstained and answer_contains(result.answer, case.answer_contains)
            if case.answerable
            else None
        ),
        evidence_contains=(
            answer_contains(evidence_text, case.answer_contains) if case.answerable else None
        ),
        confidence=result.confidence,
        seconds=round(seconds, 3),
    )


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def summarize_answers(outcomes: Sequence[AnswerOutcome]) -> AnswerMetrics:
    """Average the outcomes into the metrics."""
    answerable = [o for o in outcomes if o.answerable]
    unanswerable = [o for o in outcomes if not o.answerable]
    answered = [o for o in outcomes if not o.abstained]
    seconds = [o.seconds for o in outcomes] or [0.0]
    return AnswerMetrics(
        questions=len(outcomes),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        answer_containment=_share([bool(o.contains) for o in answerable]),
        evidence_containment=_share([bool(o.evidence_contains) for o in answerable]),
        citation_rate=_share([o.cited for o in answered]),
        false_abstention=_share([o.abstained for o in answerable]),
        false_answer=_share([not o.abstained for o in unanswerable]),
        median_s=round(statistics.median(seconds), 3),
        mean_s=round(statistics.fmean(seconds), 3),
    )


def evaluate_answers(
    cases: Sequence[AnswerCase],
    answer: Callable[[str], AnswerResult],
    label: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> AnswerReport:
    """Answer every case and compute the metrics.

    Args:
        cases: The questions.
        answer: Answers a question (the answer service, in one answer mode).
        label: Names the run in tables.
        progress: Called with ``(done, total)`` after each answer.
    """
    outcomes: list[AnswerOutcome] = []
    for done, case in enumerate(cases, start=1):
        started = time.perf_counter()
        result = answer(case.question)
        outcomes.append(outcome_of(case, result, time.perf_counter() - started))
        if progress is not None:
            progress(done, len(cases))
    return AnswerReport(label, summarize_answers(outcomes), outcomes)


_COLUMNS = (
    ("answer", "answer_containment"),
    ("evidence", "evidence_containment"),
    ("cited", "citation_rate"),
    ("false abst.", "false_abstention"),
    ("false ans.", "false_answer"),
)


def format_answer_table(reports: Sequence[AnswerReport]) -> str:
    """Render answer reports as a Markdown table, one row per run."""
    header = "| run | questions | " + " | ".join(name for name, _ in _COLUMNS)
    header += " | median s | mean s |"
    lines = [header, "|---|---:|" + "---:|" * (len(_COLUMNS) + 2)]
    for report in reports:
        m = report.metrics
        values = asdict(m)
        cells = ["-" if values[a] is None else f"{values[a]:.3f}" for _, a in _COLUMNS]
        lines.append(
            f"| {report.label} | {m.answerable}+{m.unanswerable} | "
            + " | ".join(cells)
            + f" | {m.median_s:.2f} | {m.mean_s:.2f} |"
        )
    return "\n".join(lines)
