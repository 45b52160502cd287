"""``ragserver eval --answers`` end to end with the bundled models on a small real file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main

pytestmark = pytest.mark.integration

DOC = (
    "Orchard Street Library opening hours. The library opens at 9 am and closes at 6 pm. "
    "The secret code of the archive vault is 7421. Only the head librarian knows it."
)


def test_eval_answers_reports_each_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "library.txt"
    doc.write_text(DOC)
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps(
            {
                "id": "a",
                "question": "What is the code of the vault?",
                "source": "x",
                "answer_contains": ["7421"],
            }
        )
        + "\n"
    )
    unanswerable = tmp_path / "u.jsonl"
    unanswerable.write_text(
        json.dumps(
            {
                "id": "u",
                "question": "How do I tune a Kubernetes cluster autoscaler?",
                "answerable": False,
            }
        )
        + "\n"
    )
    assert main(["ingest", str(doc)]) == 0
    out = tmp_path / "answers.json"
    code = main(
        [
            "eval",
            str(questions),
            "--answers",
            "--answer-mode",
            "extractive",
            "--unanswerable",
            str(unanswerable),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "| extractive (SmolLM2-135M-Instruct) | 1+1 |" in table
    (report,) = json.loads(out.read_text())
    metrics = report["metrics"]
    assert metrics["answer_containment"] == 1.0
    assert metrics["evidence_containment"] == 1.0
    assert metrics["citation_rate"] == 1.0
    assert metrics["false_answer"] == 0.0
    outcomes = {o["id"]: o for o in report["outcomes"]}
    assert "[1]" in outcomes["a"]["answer"]
    assert outcomes["u"]["abstained"] is True
