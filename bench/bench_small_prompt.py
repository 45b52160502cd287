"""The bundled SmolLM2 answering generatively: the full prompt against the compact one.

Usage::

    .venv/bin/python bench/bench_small_prompt.py [--data-dir DATA] [--collection pydocs]
        [--questions bench/eval/python_docs.jsonl] [--split tune] [--every 2] [--limit 20]
        [--out bench/results/small_prompt.md]

DATA (default as ``bench_answers.py``, which ingests ``pydocs`` there) holds the corpus's
collection. Each
question (``--split``, every ``--every``-th, at most ``--limit``) is answered twice in
generative mode with the bundled model, the profiles taking turns: ``full`` (the default
strategy over the top-k chunks, ``RAG_LLM__MAX_NEW_TOKENS`` reserved, no stop sequences;
what answered before the compact profile existed) and ``compact`` (the ``short_answer``
template over the evidence's chunks, a short reserve, stop sequences). Questions the reader
abstains on are answered without the model in both and count as misses. Per-question rows go
to ``OUT.jsonl`` as they finish, so a stopped run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.services.answers import AnswerRequest, AnswerService  # noqa: E402
from app.services.container import Services, build_reader, build_services  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.bench_answers import default_data_dir  # noqa: E402
from prompts.templates import TemplateRegistry  # noqa: E402
from retrieval.evaluation import answer_contains  # noqa: E402

HERE = Path(__file__).resolve().parent
PROFILES = ("full", "compact")


def service_for(services: Services, profile: str) -> AnswerService:
    """An answer service over the same search, model and reader, with ``profile``."""
    settings = services.settings
    llm = settings.llm.model_copy(update={"prompt_profile": profile})
    settings = settings.model_copy(update={"llm": llm})
    return AnswerService(
        services.search,
        services.generators,
        TemplateRegistry.from_settings(settings.prompts),
        services.answers.gate,
        settings,
        reader=build_reader(settings, services.embedder),
    )


def one(service: AnswerService, collection: str, row: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    request = AnswerRequest(question=row["question"], answer_mode="generative")
    result = service.answer_sync(collection, request)
    seconds = time.perf_counter() - started
    return {
        "contains": not result.abstained and answer_contains(result.answer, row["answer_contains"]),
        "cited": any(c.cited for c in result.citations),
        "abstained": result.abstained,
        "cut": result.finish_reason == "length",
        "tokens": result.usage["completion_tokens"],
        "prompt_tokens": result.usage["prompt_tokens"],
        "sources": len(result.citations),
        "seconds": round(seconds, 2),
        "answer": result.answer,
    }


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| profile | questions | answer contains | cites [n] (answered) | cut at the limit | "
        "median tokens | median prompt tokens | median s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for profile in PROFILES:
        runs = [r[profile] for r in rows]
        answered = [r for r in runs if not r["abstained"]]
        n = len(runs)
        lines.append(
            f"| {profile} | {n} | {sum(r['contains'] for r in runs)}/{n} | "
            f"{sum(r['cited'] for r in answered)}/{len(answered)} | "
            f"{sum(r['cut'] for r in answered)}/{len(answered)} | "
            f"{statistics.median(r['tokens'] for r in runs):.0f} | "
            f"{statistics.median(r['prompt_tokens'] for r in runs):.0f} | "
            f"{statistics.median(r['seconds'] for r in runs):.1f} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--collection", default="pydocs")
    parser.add_argument("--questions", type=Path, default=HERE / "eval" / "python_docs.jsonl")
    parser.add_argument("--split", default="tune")
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "small_prompt.md")
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("split") == args.split][:: args.every][: args.limit]
    settings = Settings(data_dir=args.data_dir)
    services = build_services(settings)
    partial = args.out.with_suffix(".jsonl")
    done: list[dict[str, Any]] = []
    try:
        services.search.keywords.wait()
        profiles = {p: service_for(services, p) for p in PROFILES}
        with partial.open("w", encoding="utf-8") as sink:
            for number, row in enumerate(rows, start=1):
                out: dict[str, Any] = {"id": row["id"]}
                for profile in PROFILES if number % 2 else reversed(PROFILES):
                    out[profile] = one(profiles[profile], args.collection, row)
                done.append(out)
                sink.write(json.dumps(out) + "\n")
                sink.flush()
                print(f"{number}/{len(rows)} {row['id']}", file=sys.stderr, flush=True)
    finally:
        services.close()
    text = "\n".join(
        [
            "# The bundled SmolLM2-135M answering generatively: full vs compact prompt",
            "",
            f"`bench/bench_small_prompt.py`, {time.strftime('%Y-%m-%d %H:%M')}: "
            f"{len(done)} `{args.split}` questions of `{args.questions.name}` (every "
            f"{args.every}th), collection `{args.collection}`, defaults otherwise.",
            "",
            *table(done),
            "",
        ]
    )
    print(text)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
