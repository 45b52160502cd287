"""The whole retrieval path with the real embedding model, on five real documentation pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.services.container import Components, build_pipeline, build_services
from app.settings import Settings
from retrieval.evaluation import EvalQuestion, evaluate

HTML = Path(__file__).resolve().parents[1] / "data" / "html"

QUESTIONS = [
    EvalQuestion(
        "r1",
        "How do I push an item onto a heap while keeping the invariant?",
        "heapq.html",
        ["heappush"],
    ),
    EvalQuestion(
        "r2",
        "How can I serialize a Python object to a JSON formatted string?",
        "json.html",
        ["dumps"],
    ),
    EvalQuestion(
        "r3",
        "Which function finds the insertion point to keep a list sorted?",
        "bisect.html",
        ["bisect_left"],
    ),
    EvalQuestion(
        "r4",
        "How do I match file names against shell-style wildcards like *.txt?",
        "fnmatch.html",
        ["fnmatch"],
    ),
    EvalQuestion(
        "r5",
        "How do I create an isolated virtual environment for a project?",
        "venv.html",
        ["venv"],
    ),
]


@pytest.mark.integration
def test_every_mode_finds_the_right_page_with_the_real_model(
    tmp_path: Path, real_embedder: object
) -> None:
    settings = Settings(data_dir=tmp_path / "data", llm={"load_at_startup": False})
    services = build_services(settings, Components(embedder=real_embedder))  # type: ignore[arg-type]
    try:
        store = services.collections.get("default")
        pipeline = build_pipeline(settings, real_embedder)  # type: ignore[arg-type]
        summary = pipeline.ingest_paths(store, [HTML], progress_bar=False)
        assert summary.created == 5
        services.search.changed("default")
        for mode in ("dense", "bm25", "hybrid"):
            report = evaluate(
                QUESTIONS,
                lambda q, mode=mode: [
                    str(h.chunk.metadata["source"])
                    for h in services.search.search("default", q, 10, mode=mode).hits
                ],
                label=mode,
            )
            assert report.metrics.hit_at_1 >= 0.8, (mode, json.dumps(report.to_json()))
            assert report.metrics.hit_at_5 == 1.0, mode
        diverse = services.search.search("default", QUESTIONS[0].question, 5, mmr=True)
        assert diverse.mmr
        assert diverse.hits[0].chunk.metadata["source"] == "heapq.html"
    finally:
        services.close()
