"""Follow-up questions: retrieval of the follow-up with and without a standalone rewrite.

Usage::

    .venv/bin/python bench/bench_conversations.py [--data-dir DATA] [--collection pydocs]
        [--pairs bench/eval/followups_python.jsonl] [--out bench/results/conversations.md]

DATA (``$RAG_DATA_DIR``, else ``$TMPDIR/ragserver-bench-answers``, the folder
``bench/bench_answers.py`` uses) holds the collection of the 369 Python documentation pages;
when it is empty the pages are ingested first (``bench_answers.ensure_corpus``).

For each pair of the follow-up set: the first question is answered as ``/query`` answers it
in extractive mode (top 5 hybrid, evidence sentences cited), which gives the previous turn
(question, answer, the cited passages' headings); then the follow-up is searched (top 10,
the default hybrid mode) as each deterministic design of ``retrieval/followup.py`` rewrites
it: ``none`` (the follow-up alone), ``concatenate`` (previous question + follow-up, the raw
baseline) and the term-carrying designs. A follow-up hits when its source page is among the
top 1 / top 5 chunks' pages. Pairs are split by the follow-up's page hash as ``bench/eval``
splits (``corpora.split_of``); the shipped design is chosen on the tune half only, and the
confirm half reports it. Intervals are 95% percentile bootstraps over pairs (2000
resamples, ``retrieval/eval_stats.py``); differences are paired.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from app.services.answers import AnswerRequest  # noqa: E402
from app.services.container import Services, build_services  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.bench_answers import default_data_dir, ensure_corpus, log  # noqa: E402
from bench.eval.corpora import split_of  # noqa: E402
from retrieval.eval_stats import bootstrap_mean, paired_difference  # noqa: E402
from retrieval.evaluation import first_rank, result_key  # noqa: E402
from retrieval.followup import REWRITERS, PriorTurn  # noqa: E402

HERE = Path(__file__).resolve().parent
PAIRS = HERE / "eval" / "followups_python.jsonl"
DEPTH = 10
SHIPPED = "terms_heading"


def load_pairs(path: Path) -> list[dict[str, object]]:
    """The follow-up pairs, one JSON object a line."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def previous_turn(services: Services, collection: str, question: str) -> PriorTurn:
    """Answer the first question as /query does (extractive) and keep what a follow-up sees."""
    result = services.answers.answer_sync(
        collection, AnswerRequest(question=question, answer_mode="extractive")
    )
    headings = [c.heading_path for c in result.citations if c.cited]
    return PriorTurn(question=question, answer=result.answer, headings=headings)


def rank_of(services: Services, collection: str, query: str, source: str) -> int | None:
    """Rank of the first chunk of ``source`` in the top ``DEPTH`` hits of ``query``."""
    hits = services.search.search(collection, query, top_k=DEPTH).hits
    return first_rank([result_key(h.chunk.metadata) for h in hits], source, DEPTH)


def run(services: Services, collection: str, pairs: list[dict[str, object]]) -> list[dict]:
    """Every pair's rank under every design."""
    rows = []
    for pair in pairs:
        prior = previous_turn(services, collection, str(pair["first"]))
        source = str(pair["source"])
        ranks, queries = {}, {}
        for name, rewrite in REWRITERS.items():
            query = rewrite(str(pair["question"]), [prior])
            queries[name] = query
            ranks[name] = rank_of(services, collection, query, source)
        rows.append({"id": pair["id"], "split": pair["split"], "ranks": ranks, "queries": queries})
    return rows


def flags(rows: list[dict], design: str, depth: int) -> np.ndarray:
    """1 where the design's rank is within ``depth``, per row."""
    return np.array(
        [r["ranks"][design] is not None and r["ranks"][design] <= depth for r in rows], float
    )


def table(rows: list[dict], split: str) -> list[str]:
    """The markdown table of one half: each design's hit@1 and hit@5, and its gain over none."""
    part = [r for r in rows if r["split"] == split]
    out = [
        f"**{split}** ({len(part)} pairs)",
        "",
        "| design | hit@1 [95% CI] | hit@5 [95% CI] | hit@5 minus none [95% CI] |",
        "|---|---|---|---|",
    ]
    for name in REWRITERS:
        h1, h5 = bootstrap_mean(flags(part, name, 1)), bootstrap_mean(flags(part, name, 5))
        gain = paired_difference(flags(part, name, 5), flags(part, "none", 5))
        out.append(f"| `{name}` | {h1} | {h5} | {gain} |")
    out += ["", f"Shipped `{SHIPPED}` minus each other design, paired over the same pairs:", ""]
    out += ["| minus | hit@1 [95% CI] | hit@5 [95% CI] |", "|---|---|---|"]
    for name in (n for n in REWRITERS if n != SHIPPED):
        d1 = paired_difference(flags(part, SHIPPED, 1), flags(part, name, 1))
        d5 = paired_difference(flags(part, SHIPPED, 5), flags(part, name, 5))
        out.append(f"| `{name}` | {d1} | {d5} |")
    return [*out, ""]


def shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    root = HERE.parent
    full = path.resolve()
    return str(full.relative_to(root)) if full.is_relative_to(root) else str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--collection", default="pydocs")
    parser.add_argument("--pairs", type=Path, default=PAIRS)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "conversations.md")
    args = parser.parse_args()
    pairs = load_pairs(args.pairs)
    for pair in pairs:
        assert pair["split"] == split_of("python_docs", str(pair["source"])), pair["id"]
    services = build_services(Settings(data_dir=args.data_dir))
    try:
        ensure_corpus(services, args.collection)
        services.search.keywords.wait()
        log(f"{len(pairs)} follow-up pairs")
        started = time.perf_counter()
        rows = run(services, args.collection, pairs)
        log(f"done in {time.perf_counter() - started:.0f} s")
    finally:
        services.close()
    lines = [
        "# Follow-up questions: retrieval with and without the standalone rewrite",
        "",
        f"`bench/bench_conversations.py`, {time.strftime('%Y-%m-%d %H:%M')}, collection "
        f"`{args.collection}` (the 369 Python 3.11 doc pages), {len(pairs)} pairs of "
        f"`{shown(args.pairs)}`"
        ", top 10 hybrid hits per follow-up; the previous turn is the first question answered "
        "in extractive mode. Designs: `retrieval/followup.py` `REWRITERS`; `terms_heading` is "
        "the shipped rewrite, chosen on the tune half (best hit@1 + hit@5 there).",
        "",
        *table(rows, "tune"),
        *table(rows, "confirm"),
        "## Every follow-up's rewritten query and rank (tune and confirm)",
        "",
        "| id | split | design | rank | query |",
        "|---|---|---|---:|---|",
    ]
    for row in rows:
        for name in ("none", "concatenate", SHIPPED):
            rank = row["ranks"][name]
            query = str(row["queries"][name]).replace("|", "\\|")
            lines.append(f"| {row['id']} | {row['split']} | {name} | {rank or '-'} | {query} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:50]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
