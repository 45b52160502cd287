"""Evidence, abstention and answers on the Python docs dev set: tune on one half, confirm on other.

Usage::

    .venv/bin/python bench/bench_answers.py [--data-dir DATA] [--collection pydocs]
        [--questions /work/shared/eval/dev_questions.jsonl]
        [--unanswerable bench/eval/unanswerable_python.jsonl]
        [--end-to-end] [--generative N] [--out bench/results/answers_python40.md]

DATA (``$RAG_DATA_DIR``, else ``$TMPDIR/ragserver-bench-answers``) holds the collection of the
369 corpus pages (``bench/corpus.py``); when it is missing or empty the script ingests them
first (about 13 minutes of CPU on 2 cores; the embedding cache in DATA makes later runs cheap).

The dev questions are split by source page (a page's questions stay together; a salted
SHA-1 of the page decides its half, 20/20): weights and thresholds are chosen on the tune
half only and every figure reported as the result comes from the confirm half. The
unanswerable questions are split by id (odd ids tune). Steps:

1. each question is searched as ``/query`` does (top 5, the default hybrid mode) and every
   sentence of its chunks is scored once (``app.services.evidence``);
2. evidence containment (every ``answer_contains`` phrase in the top 3 sentences) is
   compared for the top-5 chunks, the naive reader (embedding cosine only) and the weighted
   scorer, whose weights are picked by a grid search on the tune half;
3. the abstention model (logistic over best cosine, best overlap, term coverage) is fitted
   on the tune half's answerable and unanswerable questions, and its threshold is the
   highest that refuses at most 5% of the tune half's answerable questions;
4. with ``--end-to-end`` the confirm half is answered through the answer service in
   extractive mode with the shipped defaults (``--generative N``: also the first N
   confirm questions in generative mode with the bundled model).

Intervals are 95% bootstrap intervals over questions (2000 resamples).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from app.services.answer_eval import (  # noqa: E402
    AnswerCase,
    evaluate_answers,
    format_answer_table,
)
from app.services.answers import AnswerRequest  # noqa: E402
from app.services.container import build_services  # noqa: E402
from app.services.evidence import (  # noqa: E402
    Evidence,
    EvidenceWeights,
    evidence_confidence,
    rescore,
    score_units,
    term_coverage,
)
from app.services.reader import CONFIDENCE_WEIGHTS  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.corpus import QUESTIONS, load_questions  # noqa: E402
from retrieval.bm25 import KeywordTokenizer  # noqa: E402
from retrieval.evaluation import answer_contains  # noqa: E402

HERE = Path(__file__).resolve().parent
UNANSWERABLE = HERE / "eval" / "unanswerable_python.jsonl"
TOP_CHUNKS = 5
TOP_SENTENCES = 3
MAX_FALSE_ABSTENTION = 0.05


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


@dataclass
class Read:
    """One question's retrieved chunks and its scored sentences."""

    id: str
    question: str
    phrases: list[str]
    answerable: bool
    half: str
    chunks: list[str]
    units: list[Evidence]
    coverage: float


def default_data_dir() -> Path:
    """``$RAG_DATA_DIR``, else a folder under the temp dir that later runs reuse."""
    import tempfile

    env = os.environ.get("RAG_DATA_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / "ragserver-bench-answers"


def ensure_corpus(services: object, collection: str) -> None:
    """Ingest the corpus pages into ``collection`` unless it already holds chunks."""
    from app.services.container import Services, build_pipeline
    from bench.corpus import DOC_ROOT, corpus_exclude_globs, corpus_include_globs
    from core.errors import CollectionNotFound

    assert isinstance(services, Services)
    try:
        store = services.collections.get(collection)
    except CollectionNotFound:
        store = services.collections.create(collection)
    if store.count():
        return
    log(f"ingesting {DOC_ROOT} into {collection} (once; later runs reuse it)")
    pipeline = build_pipeline(services.settings, services.embedder)
    pipeline.ingest_paths(
        store, [DOC_ROOT], include=corpus_include_globs(), exclude=corpus_exclude_globs()
    )
    store.persist()
    services.search.changed(collection)


def half_of_page(source: str) -> str:
    """``tune`` or ``confirm``, fixed by the page's SHA-1 (a page's questions stay together).

    The salt ``b`` is the first that splits the 40 dev questions 20/20 (chosen on the counts
    alone, before any result).
    """
    digest = hashlib.sha1(("b" + source).encode()).digest()
    return "tune" if digest[0] % 2 == 0 else "confirm"


def bootstrap(flags: Sequence[bool], rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of a share."""
    values = np.asarray(flags, dtype=float)
    if values.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(rounds, values.size), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def share(flags: Sequence[bool]) -> str:
    low, high = bootstrap(flags)
    return f"{sum(flags) / len(flags):.3f} [{low:.2f}, {high:.2f}] (n={len(flags)})"


def contained(units: Sequence[Evidence], phrases: Sequence[str], n: int = TOP_SENTENCES) -> bool:
    best = sorted(units, key=lambda e: e.score, reverse=True)[:n]
    return answer_contains(" ".join(e.text for e in best), phrases)


def read_all(services: object, collection: str, rows: list[dict[str, object]]) -> list[Read]:
    """Search each question and score its sentences once (min_chars 1: the grid filters)."""
    from app.services.container import Services

    assert isinstance(services, Services)
    terms = KeywordTokenizer(stopwords=True)
    raw = EvidenceWeights(min_chars=1)
    out: list[Read] = []
    for row in rows:
        question = str(row["question"])
        hits = services.search.search(collection, question, top_k=TOP_CHUNKS).hits
        chunks = [hit.chunk.text for hit in hits]
        out.append(
            Read(
                id=str(row["id"]),
                question=question,
                phrases=[str(p) for p in row.get("answer_contains", [])],  # type: ignore[attr-defined]
                answerable=bool(row.get("answerable", True)),  # type: ignore[attr-defined]
                half=str(row["half"]),
                chunks=chunks,
                units=score_units(question, chunks, services.embedder, terms, raw),
                coverage=term_coverage(question, chunks, terms),
            )
        )
    return out


GRID = (
    (0.25, 0.5, 0.75, 1.0),  # dense
    (0.0, 0.25, 0.5, 0.75, 1.0),  # overlap
    (0.0, 0.05, 0.1, 0.2),  # rank
    (0.0, 0.3, 0.6),  # context
    (1, 12),  # min_chars: a fact can be a short sentence ("The vault code is 7421.")
)


def tune_weights(reads: Sequence[Read]) -> tuple[EvidenceWeights, float]:
    """The grid point with the best evidence containment (top 3) on ``reads``.

    Ties (many, on a 20-question half) go to the point whose grid neighbours (one step along
    one axis) score best on average: the middle of a plateau, not its edge.
    """
    scores: dict[tuple[int, ...], int] = {}
    for index in itertools.product(*(range(len(axis)) for axis in GRID)):
        weights = EvidenceWeights(*(axis[i] for axis, i in zip(GRID, index, strict=True)))
        if weights.dense or weights.overlap:
            scores[index] = sum(contained(rescore(r.units, weights), r.phrases) for r in reads)

    def neighbourhood(index: tuple[int, ...]) -> float:
        near = [
            scores[other]
            for axis in range(len(index))
            for step in (-1, 1)
            if (other := index[:axis] + (index[axis] + step,) + index[axis + 1 :]) in scores
        ]
        return sum(near) / len(near) if near else 0.0

    best = max(scores, key=lambda i: (scores[i], neighbourhood(i)))
    weights = EvidenceWeights(*(axis[i] for axis, i in zip(GRID, best, strict=True)))
    return weights, scores[best] / len(reads)


def features(read: Read) -> list[float]:
    if not read.units:
        return [0.0, 0.0, read.coverage]
    return [
        max(e.dense for e in read.units),
        max(e.overlap for e in read.units),
        read.coverage,
    ]


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 0.1) -> np.ndarray:
    """Logistic regression by Newton's method with a small L2 penalty (bias not penalised)."""
    design = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(design.shape[1])
    penalty = np.diag([0.0] + [l2] * x.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-design @ w))
        gradient = design.T @ (p - y) + penalty @ w
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty
        w -= np.linalg.solve(hessian, gradient)
    return w


def confidence(read: Read, weights: Sequence[float]) -> float:
    units = read.units
    return evidence_confidence(units, read.coverage, weights) if units else 0.0


def pick_threshold(answerable: Sequence[float]) -> float:
    """The highest threshold refusing at most MAX_FALSE_ABSTENTION of ``answerable``."""
    ordered = sorted(answerable)
    allowed = int(MAX_FALSE_ABSTENTION * len(ordered))
    return round(ordered[allowed] - 1e-4, 4) if ordered else 0.5


def evidence_section(reads: Sequence[Read], tuned: EvidenceWeights) -> list[str]:
    naive = EvidenceWeights(dense=1.0, overlap=0.0, rank=0.0, context=0.0, min_chars=1)
    lines = [
        "| half | top-5 chunks | naive top-3 sentences (cosine) | tuned top-3 sentences |",
        "|---|---|---|---|",
    ]
    for half in ("tune", "confirm"):
        rows = [r for r in reads if r.answerable and r.half == half]
        chunk = [answer_contains(" ".join(r.chunks), r.phrases) for r in rows]
        base = [contained(rescore(r.units, naive), r.phrases) for r in rows]
        ours = [contained(rescore(r.units, tuned), r.phrases) for r in rows]
        lines.append(f"| {half} | {share(chunk)} | {share(base)} | {share(ours)} |")
    return lines


def abstention_section(reads: Sequence[Read], weights: Sequence[float]) -> tuple[list[str], float]:
    tune_answerable = [confidence(r, weights) for r in reads if r.half == "tune" and r.answerable]
    threshold = pick_threshold(tune_answerable)
    lines = [
        f"Threshold (picked on the tune half: at most {MAX_FALSE_ABSTENTION:.0%} of its "
        f"answerable questions refused): confidence < {threshold:.4f}",
        "",
        "| half | false abstentions (answerable refused) | false answers (unanswerable answered) |",
        "|---|---|---|",
    ]
    for half in ("tune", "confirm"):
        refused = [
            confidence(r, weights) < threshold for r in reads if r.half == half and r.answerable
        ]
        answered = [
            confidence(r, weights) >= threshold
            for r in reads
            if r.half == half and not r.answerable
        ]
        lines.append(f"| {half} | {share(refused)} | {share(answered)} |")
    return lines, threshold


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--collection", default="pydocs")
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--unanswerable", type=Path, default=UNANSWERABLE)
    parser.add_argument("--end-to-end", action="store_true")
    parser.add_argument("--keep-reads", type=Path, help="pickle the scored sentences here")
    parser.add_argument("--generative", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "answers_python40.md")
    args = parser.parse_args()

    rows: list[dict[str, object]] = []
    for q in load_questions(args.questions):
        rows.append({**q, "half": half_of_page(q["source"])})
    for q in load_questions(args.unanswerable):
        rows.append({**q, "half": "tune" if int(q["id"][1:]) % 2 else "confirm"})
    llm_loaded = args.end_to_end or args.generative
    settings = Settings(data_dir=args.data_dir)
    if not llm_loaded:
        settings = settings.model_copy(
            update={"llm": settings.llm.model_copy(update={"load_at_startup": False})}
        )
    services = build_services(settings)
    try:
        ensure_corpus(services, args.collection)
        services.search.keywords.wait()
        log(f"reading {len(rows)} questions")
        reads = read_all(services, args.collection, rows)
        if args.keep_reads:
            import pickle

            args.keep_reads.write_bytes(pickle.dumps(reads))
        tune = [r for r in reads if r.half == "tune" and r.answerable]
        tuned, tune_score = tune_weights(tune)
        log(f"tuned weights {tuned} (tune containment {tune_score:.3f})")
        fit_rows = [r for r in reads if r.half == "tune"]
        w = fit_logistic(
            np.array([features(r) for r in fit_rows]),
            np.array([1.0 if r.answerable else 0.0 for r in fit_rows]),
        )
        fitted = tuple(round(float(v), 3) for v in w)
        log(f"confidence weights (bias, dense, overlap, coverage) = {fitted}")
        abstain_lines, threshold = abstention_section(reads, fitted)
        shipped_lines, _ = abstention_section(reads, CONFIDENCE_WEIGHTS)
        counts = {
            (h, a): sum(r.half == h and r.answerable == a for r in reads)
            for h in ("tune", "confirm")
            for a in (True, False)
        }
        out = [
            "# Evidence, abstention and answers (Python 3.11 docs dev set)",
            "",
            f"`bench/bench_answers.py`, {time.strftime('%Y-%m-%d %H:%M')}, collection "
            f"`{args.collection}`, top {TOP_CHUNKS} chunks (hybrid), "
            f"top {TOP_SENTENCES} sentences.",
            f"Halves by source page: tune {counts['tune', True]} answerable + "
            f"{counts['tune', False]} unanswerable, confirm {counts['confirm', True]} + "
            f"{counts['confirm', False]}. Intervals: 95% bootstrap.",
            "",
            "## Evidence containment (every expected phrase in the evidence)",
            "",
            f"Weights picked on the tune half: {tuned}",
            "",
            *evidence_section(reads, tuned),
            "",
            "## Abstention",
            "",
            "Logistic confidence fitted on the tune half: (bias, dense, overlap, coverage) = "
            f"{fitted}",
            "",
            *abstain_lines,
            "",
            f"With the shipped constants {CONFIDENCE_WEIGHTS}:",
            "",
            *shipped_lines,
        ]
        if llm_loaded:
            out += end_to_end(services, args.collection, reads, args)
    finally:
        services.close()
    text = "\n".join(out) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    log(f"written to {args.out}")
    return 0


def end_to_end(
    services: object, collection: str, reads: Sequence[Read], args: argparse.Namespace
) -> list[str]:
    """The confirm half through the answer service, as ``ragserver eval --answers`` runs it."""
    from app.services.container import Services

    assert isinstance(services, Services)
    cases = [
        AnswerCase(r.id, r.question, r.phrases, r.answerable) for r in reads if r.half == "confirm"
    ]
    reports = []
    runs = [("extractive", cases)] if args.end_to_end else []
    if args.generative:
        runs.append(("generative", [c for c in cases if c.answerable][: args.generative]))
    for mode, subset in runs:
        log(f"{mode}: {len(subset)} questions")

        def answer(question: str, mode: str = mode) -> object:
            return services.answers.answer_sync(
                collection, AnswerRequest(question=question, answer_mode=mode)
            )

        label = f"{mode} ({services.answers.model_name()})"
        reports.append(evaluate_answers(subset, answer, label=label))  # type: ignore[arg-type]
    return [
        "",
        "## End to end, confirm half (shipped defaults, 2 shared CPU cores)",
        "",
        format_answer_table(reports),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
