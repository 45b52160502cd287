"""The retrieval benchmark's report: intervals per half, paired differences, the #24 verdict."""

from __future__ import annotations

import json

import pytest

from bench.retrieval_report import Run, render, to_json
from retrieval.evaluation import EvalQuestion, evaluate


def questions(n: int) -> list[EvalQuestion]:
    return [
        EvalQuestion(f"q{i}", f"question {i}", f"p{i}", [], "fact", "tune" if i % 2 else "confirm")
        for i in range(n)
    ]


def run(system: str, mode: str, wrong: set[int], default: bool = False, n: int = 40) -> Run:
    """A run whose answer is at rank 1 except for the question numbers in ``wrong`` (rank 2)."""

    def retrieve(text: str) -> list[str]:
        i = int(text.split()[1])
        return ["x", f"p{i}"] if i in wrong else [f"p{i}"]

    report = evaluate(questions(n), retrieve, label=f"{system} {mode}")
    return Run(system, "200/30 tokens", mode, 100, report, 1.0, 0.1, 2.0, default=default)


def test_a_clear_win_on_the_confirming_half_passes_and_a_tie_does_not() -> None:
    langchain = run("langchain", "dense", wrong=set(range(0, 40, 2)))  # misses every confirm q
    winner = run("ragserver", "hybrid", wrong=set(), default=True)
    tie = run("ragserver", "hybrid", wrong=set(range(0, 40, 2)), default=True)
    text = render({"wins": [winner, langchain], "ties": [tie, langchain]}, ["# title"], 500, 0)
    verdict = text.split("## Per corpus")[0]
    assert "| wins | 20 | +1.000 [+1.000, +1.000]* | +0.000 [+0.000, +0.000] |" in verdict
    assert verdict.count("| yes |") == 1
    assert "| ties | 20 |" in verdict
    assert verdict.count("| no |") == 1
    section = text.split("### wins")[1]
    assert "| ours hybrid (default) | 200/30 tokens | 100 | all | 40 |" in section
    assert "| confirm | 20 | 1.000 [1.000, 1.000]" in section
    assert "| LangChain |" in section
    assert "Ours minus LangChain" in section


def test_the_json_holds_intervals_and_per_question_results() -> None:
    data = to_json({"c": [run("ragserver", "dense", wrong={1, 2, 3})]}, 300, 0)
    row = data["c"][0]
    assert row["intervals"]["all"]["hit@1"]["estimate"] == pytest.approx(37 / 40)
    assert set(row["intervals"]) == {"all", "tune", "confirm"}
    assert row["by_split"]["tune"]["questions"] == 20
    assert len(row["results"]) == 40
    json.dumps(data)  # serialisable as it is


def test_the_default_is_compared_with_the_old_default_on_the_confirming_half() -> None:
    langchain = run("langchain", "dense", wrong=set())
    old = run("ragserver", "hybrid", wrong=set(range(0, 40, 2)))  # misses every confirm q
    old.label, old.extra["old_default"] = "ours hybrid (old default)", True
    new = run("ragserver", "hybrid", wrong=set(), default=True)
    text = render({"pdf": [new, old, langchain]}, ["# title"], 500, 0)
    section = text.split("## Confirming halves: shipping default minus the default before #24")[1]
    assert "| pdf | 20 | +1.000 [+1.000, +1.000]* |" in section.split("## Per corpus")[0]
    assert "| ours hybrid (old default) |" in text
    assert "Shipping default minus the old default" in text
    # Without an old-default run there is no such section.
    assert "before #24" not in render({"pdf": [new, langchain]}, ["# t"], 500, 0)
