"""Evaluation metrics on a toy set, and ``ragserver eval`` end to end on a tiny collection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import cli
from core.errors import InvalidRequest
from retrieval.evaluation import (
    EvalQuestion,
    answer_contains,
    evaluate,
    first_rank,
    format_table,
    load_questions,
)
from tests.fakes import EchoGenerator, HashEmbedder


def q(qid: str, source: str, phrases: list[str] | None = None, kind: str = "fact") -> EvalQuestion:
    return EvalQuestion(qid, f"question {qid}", source, phrases or [], kind)


def test_first_rank_is_by_page_within_the_top_10() -> None:
    assert first_rank(["a", "b", "b", "c"], "b") == 2
    assert first_rank(["a"] * 10 + ["b"], "b") is None  # rank 11 does not count
    assert first_rank([], "b") is None


def test_metrics_on_a_toy_set() -> None:
    retrieved = {
        "q1": ["p1", "x", "x"],  # rank 1
        "q2": ["x", "x", "p2", "p2"],  # rank 3
        "q3": ["x"] * 5 + ["p3"],  # rank 6: not a hit@5, counts 1/6
        "q4": ["x"] * 10,  # no rank
    }
    questions = [q("q1", "p1"), q("q2", "p2"), q("q3", "p3", kind="howto"), q("q4", "p4")]
    by_text = {f"question {k}": v for k, v in retrieved.items()}
    report = evaluate(questions, lambda text: by_text[text], label="toy")
    m = report.metrics
    assert (m.questions, m.hit_at_1, m.hit_at_5) == (4, 0.25, 0.5)
    assert m.mrr_at_10 == pytest.approx((1 + 1 / 3 + 1 / 6 + 0) / 4)
    assert m.answer_containment is None
    assert [r.rank for r in report.results] == [1, 3, 6, None]
    assert report.by_kind["howto"].mrr_at_10 == pytest.approx(1 / 6)
    assert report.by_kind["fact"].questions == 3
    table = format_table([report])
    assert "toy" in table
    assert "0.250" in table
    assert "0.375" in table


def test_answer_containment_is_strict_but_ignores_case_and_spacing() -> None:
    assert answer_contains(
        "Use a  QueueHandler\nand a QueueListener.",
        ["queuehandler", "Queue Listener".replace(" ", "")],
    )
    assert answer_contains("keyboard   focus", ["Keyboard Focus"])
    assert not answer_contains("100 ms", ["100 milliseconds"])
    assert not answer_contains("QueueHandler only", ["QueueHandler", "QueueListener"])
    questions = [q("a", "p", ["yes"]), q("b", "p", ["no"])]
    report = evaluate(questions, lambda _: ["p"], answer=lambda _: "Yes, indeed")
    assert report.metrics.answer_containment == 0.5
    assert [r.contains for r in report.results] == [True, False]


def test_load_questions_reads_the_dev_format(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    row = {
        "id": "d001",
        "question": "Why?",
        "source": "faq/gui.html",
        "answer_contains": ["keyboard focus"],
        "kind": "fact",
    }
    path.write_text(json.dumps(row) + "\n\n")
    assert load_questions(path) == [
        EvalQuestion("d001", "Why?", "faq/gui.html", ["keyboard focus"], "fact")
    ]
    path.write_text('{"id": "x"}\n')
    with pytest.raises(InvalidRequest, match=r"q.jsonl:1"):
        load_questions(path)


@pytest.fixture
def tiny_collection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc_dir: Path) -> Path:
    """The ``default`` collection of the test's data dir, holding DOCS, with fakes wired in."""
    import app.services.container as container

    monkeypatch.setattr(container, "build_embedder", lambda settings: HashEmbedder())
    monkeypatch.setattr(container, "create_generator", lambda *a, **k: EchoGenerator())
    monkeypatch.setenv("RAG_LLM__LOAD_AT_STARTUP", "false")
    assert cli.main(["ingest", str(doc_dir), "--collection", "default"]) == 0
    questions = tmp_path / "questions.jsonl"
    rows = [
        {
            "id": "t1",
            "question": "How do I keep a heap with heappush?",
            "source": "heapq.txt",
            "answer_contains": ["heap queue"],
            "kind": "howto",
        },
        {
            "id": "t2",
            "question": "Which module parses JSON strings with loads?",
            "source": "json.txt",
            "answer_contains": ["json module"],
            "kind": "fact",
        },
        {
            "id": "t3",
            "question": "How are isolated virtual environments created?",
            "source": "venv.txt",
            "answer_contains": ["nothing like this"],
            "kind": "howto",
        },
    ]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return questions


def test_eval_command_end_to_end(
    tiny_collection: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    code = cli.main(
        [
            "eval",
            str(tiny_collection),
            "--collection",
            "default",
            "--mode",
            "bm25",
            "--top-k",
            "10",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "hit@1" in printed
    assert "MRR@10" in printed
    assert "default bm25" in printed
    data = json.loads(out.read_text())
    assert data["mode"] == "bm25"
    assert data["collection"] == "default"
    assert data["top_k"] == 10
    assert data["metrics"] == {"questions": 3, "hit@1": 1.0, "hit@5": 1.0, "mrr@10": 1.0}
    assert [r["rank"] for r in data["results"]] == [1, 1, 1]
    assert data["results"][0]["retrieved"][0] == "heapq.txt"
    assert set(data["by_kind"]) == {"fact", "howto"}


def test_eval_command_with_answers(tiny_collection: Path, tmp_path: Path) -> None:
    out = tmp_path / "answers.json"
    code = cli.main(
        ["eval", str(tiny_collection), "--mode", "hybrid", "--answer", "--out", str(out)]
    )
    assert code == 0
    data = json.loads(out.read_text())
    # The echo model quotes the first sentence of the best chunk: two of three contain the
    # expected phrase; the third expects a phrase no document has.
    assert data["metrics"]["answer_containment"] == pytest.approx(2 / 3)
    assert [r["contains"] for r in data["results"]] == [True, True, False]
    assert all(r["answer"] for r in data["results"])


def test_eval_command_scores_pdf_pages_and_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import app.services.container as container
    from tests.ingest.files import make_pdf

    monkeypatch.setattr(container, "build_embedder", lambda settings: HashEmbedder())
    monkeypatch.setattr(container, "create_generator", lambda *a, **k: EchoGenerator())
    monkeypatch.setenv("RAG_LLM__LOAD_AT_STARTUP", "false")
    folder = tmp_path / "pdf"
    folder.mkdir()
    pages = [
        "Penguins waddle across the antarctic ice and dive for krill.",
        "Volcanoes erupt molten basalt lava from the mantle below.",
        "Violins have four strings tuned in fifths and a carved spruce top.",
    ]
    (folder / "guide.pdf").write_bytes(make_pdf(pages))
    assert cli.main(["ingest", str(folder), "--collection", "pdfs", "--create"]) == 0
    rows = [
        ("p1", "penguins krill antarctic ice", "guide.pdf#page=1", "tune"),
        ("p2", "volcanoes basalt lava mantle", "guide.pdf#page=2", "confirm"),
        ("p3", "violins strings spruce", "guide.pdf#page=2", "confirm"),  # page 3 answers it
    ]
    questions = tmp_path / "pdf.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"id": i, "question": q, "source": s, "split": h, "corpus": "guide"}) + "\n"
            for i, q, s, h in rows
        )
    )
    out = tmp_path / "pdf.json"
    args = ["eval", str(questions), "--collection", "pdfs", "--mode", "bm25", "--out", str(out)]
    assert cli.main([*args, "--resamples", "200"]) == 0
    printed = capsys.readouterr().out
    assert "Bootstrap 95% intervals (200 resamples" in printed
    data = json.loads(out.read_text())
    ranks = {r["id"]: r["rank"] for r in data["results"]}
    assert ranks["p1"] == 1
    assert ranks["p2"] == 1
    assert ranks["p3"] != 1  # the top chunk is page 3, not the page the question names
    assert data["results"][2]["retrieved"][0] == "guide.pdf#page=3"
    assert data["by_split"]["tune"]["hit@1"] == 1.0
    assert data["by_split"]["confirm"]["hit@1"] == 0.5
    assert set(data["intervals"]) == {"all", "tune", "confirm"}
    assert data["intervals"]["tune"]["hit@1"] == {"estimate": 1.0, "low": 1.0, "high": 1.0}

    assert cli.main([*args, "--split", "tune"]) == 0
    assert json.loads(out.read_text())["metrics"]["questions"] == 1
