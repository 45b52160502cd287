"""Answer evaluation: the metrics from known outcomes, and the question-set reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.answer_eval import (
    AnswerCase,
    evaluate_answers,
    format_answer_table,
    load_answer_cases,
)
from app.services.answers import AnswerResult, Citation
from app.services.evidence import Evidence
from core.errors import InvalidRequest


def result(
    answer: str, evidence: str, *, abstained: bool = False, cited: bool = True
) -> AnswerResult:
    citation = Citation(1, "d:0", "d", "f.txt", None, "", 0.5, evidence, cited)
    return AnswerResult(
        answer=answer,
        reasoning=None,
        citations=[citation],
        usage={},
        timings={},
        model="m",
        finish_reason="stop",
        evidence=[Evidence(1, 0, len(evidence), evidence, 1.0, 0.9, 0.5)],
        answer_mode="extractive",
        abstained=abstained,
        confidence=0.2 if abstained else 0.9,
    )


def test_metrics_count_containment_evidence_citations_and_abstention() -> None:
    cases = [
        AnswerCase("a1", "q1", ["Queue Handler"]),
        AnswerCase("a2", "q2", ["7421"]),
        AnswerCase("a3", "q3", ["north"]),
        AnswerCase("u1", "q4", [], answerable=False),
        AnswerCase("u2", "q5", [], answerable=False),
    ]
    answers = {
        "q1": result("Use a queue  handler [1].", "Use a QueueHandler."),  # answer only
        "q2": result("It is 7421.", "The code is 7421.", cited=False),  # both, not cited
        "q3": result("The documents do not say.", "The north door.", abstained=True),
        "q4": result("The documents do not say.", "unrelated", abstained=True),
        "q5": result("Made up [1].", "unrelated"),
    }
    report = evaluate_answers(cases, lambda q: answers[q], label="x")
    m = report.metrics
    assert (m.questions, m.answerable, m.unanswerable) == (5, 3, 2)
    assert m.answer_containment == pytest.approx(2 / 3)
    assert m.evidence_containment == pytest.approx(2 / 3)
    assert m.citation_rate == pytest.approx(2 / 3)  # q1, q5 cite; q2 does not; abstentions out
    assert m.false_abstention == pytest.approx(1 / 3)
    assert m.false_answer == pytest.approx(1 / 2)
    table = format_answer_table([report])
    assert "| x | 3+2 | 0.667 | 0.667 | 0.667 | 0.333 | 0.500 |" in table


def test_question_sets_mix_answerable_and_unanswerable(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"id": "d1", "question": "q?", "answer_contains": ["x"], "source": "a.html"}\n\n'
        '{"id": "u1", "question": "r?", "answerable": false}\n'
    )
    cases = load_answer_cases(path)
    assert [(c.id, c.answerable, c.answer_contains) for c in cases] == [
        ("d1", True, ["x"]),
        ("u1", False, []),
    ]
    path.write_text('{"id": "d1", "question": "q?"}\n')
    with pytest.raises(InvalidRequest, match="answer_contains"):
        load_answer_cases(path)


def test_the_unanswerable_python_set_is_well_formed() -> None:
    path = Path(__file__).resolve().parents[3] / "bench" / "eval" / "unanswerable_python.jsonl"
    cases = load_answer_cases(path)
    assert len(cases) >= 30
    assert not any(c.answerable for c in cases)
    assert len({c.id for c in cases}) == len(cases)
