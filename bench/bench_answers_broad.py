"""Extractive answers and abstention on #24's three corpora: tune on `tune`, confirm once.

Usage::

    .venv/bin/python bench/bench_answers_broad.py [--data-dir DATA] [--reads reads.pkl]
        [--confirm] [--out bench/results/answers.md]

DATA (``$RAG_DATA_DIR``, else ``$TMPDIR/ragserver-bench-answers``, as ``bench_answers.py``)
holds the collections ``pydocs``, ``debian_reference`` and ``postgresql``; a missing or
empty one is ingested first (the better part of an hour on two busy cores). Questions:
``bench/eval/{python_docs,debian_reference,postgresql}.jsonl`` (their ``split``) and the
unanswerable sets ``bench/eval/unanswerable_*.jsonl`` (the Python one split by id: odd ids tune).

Tuning (``tune`` questions of all three corpora only): every question is searched as
``/query`` does (top 5, default hybrid) and every sentence of its chunks scored once
(``--reads`` keeps them, so a rerun costs no model time). Then

1. evidence weights by grid search (evidence containment of the top 3 sentences),
2. how many sentences (3-5) and the following-unit rule (``none``, ``lead``, ``always``),
3. the abstention model (logistic over best cosine, best overlap, term coverage) and its
   threshold: the highest refusing at most 5% of the tune answerable questions.

``--confirm`` answers the ``confirm`` questions once through the answer service in
extractive mode with the shipped defaults and reports, per corpus and pooled, with 95%
bootstrap intervals. Phrases are matched as the sets define them: whitespace collapsed for
HTML, all whitespace removed for the Debian PDF (its extracted text loses spaces).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from app.services.evidence import (  # noqa: E402
    FOLLOW_RULES,
    Evidence,
    EvidenceWeights,
    rescore,
    score_units,
    term_coverage,
    with_following,
)
from bench.bench_answers import (  # noqa: E402
    bootstrap,
    default_data_dir,
    fit_logistic,
    pick_threshold,
)
from bench.eval.corpora import normalize, squeeze  # noqa: E402
from retrieval.bm25 import KeywordTokenizer  # noqa: E402

HERE = Path(__file__).resolve().parent
EVAL = HERE / "eval"
CORPORA = {
    "python_docs": "pydocs",
    "debian_reference": "debian_reference",
    "postgresql": "postgresql",
}
TOP_CHUNKS = 5
GRID = (
    (0.25, 0.5, 0.75, 1.0),  # dense
    (0.0, 0.1, 0.25, 0.5, 1.0),  # overlap
    (0.0, 0.05, 0.1, 0.2),  # rank
    (0.0, 0.3, 0.6),  # context
)


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


@dataclass
class Read:
    """One question's chunks and scored units (text order)."""

    id: str
    corpus: str
    question: str
    phrases: list[str]
    answerable: bool
    split: str
    chunks: list[str]
    units: list[Evidence]
    coverage: float
    unknown: float = 0.0


def matcher(corpus: str) -> Callable[[str, Sequence[str]], bool]:
    """Whether a text holds every phrase, compared as the corpus's set defines."""
    norm = squeeze if corpus == "debian_reference" else normalize
    return lambda text, phrases: all(norm(p) in norm(text) for p in phrases)


def load_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for corpus in CORPORA:
        for line in (EVAL / f"{corpus}.jsonl").read_text().splitlines():
            rows.append({**json.loads(line), "corpus": corpus, "answerable": True})
        name = "python" if corpus == "python_docs" else corpus
        for line in (EVAL / f"unanswerable_{name}.jsonl").read_text().splitlines():
            row = json.loads(line)
            split = row.get("split") or ("tune" if int(row["id"][1:]) % 2 else "confirm")
            rows.append({**row, "corpus": corpus, "split": split, "answer_contains": []})
    return rows


def read_all(services: Any, rows: Sequence[dict[str, Any]]) -> list[Read]:
    terms = KeywordTokenizer(stopwords=True)
    raw = EvidenceWeights(min_chars=1)
    out = []
    for number, row in enumerate(rows, start=1):
        question = row["question"]
        hits = services.search.search(CORPORA[row["corpus"]], question, top_k=TOP_CHUNKS).hits
        chunks = [hit.chunk.text for hit in hits]
        out.append(
            Read(
                row["id"],
                row["corpus"],
                question,
                list(row["answer_contains"]),
                bool(row["answerable"]),
                row["split"],
                chunks,
                score_units(question, chunks, services.embedder, terms, raw),
                term_coverage(question, chunks, terms),
                services.search.unknown_share(CORPORA[row["corpus"]], question),
            )
        )
        if number % 25 == 0:
            log(f"read {number}/{len(rows)}")
    return out


@dataclass(frozen=True)
class Choice:
    """A reader setting: weights, sentences kept, the following-unit rule."""

    weights: EvidenceWeights
    sentences: int = 3
    follow: str = "none"


def evidence_of(read: Read, choice: Choice) -> list[Evidence]:
    scored = rescore(read.units, choice.weights)
    ranked = sorted(scored, key=lambda e: e.score, reverse=True)[: choice.sentences]
    return with_following(ranked, scored, read.chunks, choice.follow)


def contained(read: Read, choice: Choice) -> bool:
    text = " ".join(e.text for e in evidence_of(read, choice))
    return matcher(read.corpus)(text, read.phrases)


def grid_weights(
    reads: Sequence[Read], sentences: int = 3, follow: str = "none"
) -> tuple[EvidenceWeights, int]:
    """The grid point with the most tune questions contained (first best wins ties)."""
    best: tuple[int, EvidenceWeights] | None = None
    for values in itertools.product(*GRID):
        weights = EvidenceWeights(*values, min_chars=1)
        if not (weights.dense or weights.overlap):
            continue
        score = sum(contained(r, Choice(weights, sentences, follow)) for r in reads)
        if best is None or score > best[0]:
            best = (score, weights)
    assert best is not None
    return best[1], best[0]


def features(read: Read) -> list[float]:
    if not read.units:
        return [0.0, 0.0, read.coverage, read.unknown]
    best = [max(e.dense for e in read.units), max(e.overlap for e in read.units)]
    return [*best, read.coverage, read.unknown]


def confidence(read: Read, w: Sequence[float]) -> float:
    z = w[0] + sum(a * b for a, b in zip(w[1:], features(read), strict=True))
    return float(1.0 / (1.0 + np.exp(-z))) if read.units else 0.0


def share(flags: Sequence[bool]) -> str:
    if not flags:
        return "-"
    low, high = bootstrap(flags)
    return f"{sum(flags) / len(flags):.2f} [{low:.2f}, {high:.2f}] (n={len(flags)})"


def tune(reads: list[Read]) -> list[str]:
    tune_ok = [r for r in reads if r.split == "tune" and r.answerable]
    before = Choice(EvidenceWeights(min_chars=1))
    base = sum(contained(r, before) for r in tune_ok)
    log(f"shipped weights, top 3: {base}/{len(tune_ok)}")
    lines = [
        f"Tune answerable questions: {len(tune_ok)}. Shipped reader (3 sentences): {base}.",
        "",
        "| sentences | following unit | shipped weights | grid-best weights | contained |",
        "|---:|---|---:|---|---:|",
    ]
    for sentences, follow in itertools.product((3, 4), FOLLOW_RULES):
        shipped = sum(contained(r, Choice(before.weights, sentences, follow)) for r in tune_ok)
        weights, score = grid_weights(tune_ok, sentences, follow)
        log(f"{sentences} {follow}: shipped {shipped}, grid {weights} {score}")
        lines.append(f"| {sentences} | {follow} | {shipped} | {weights} | {score}/{len(tune_ok)} |")
    tune_all = [r for r in reads if r.split == "tune"]
    w = fit_logistic(
        np.array([features(r) for r in tune_all]),
        np.array([1.0 if r.answerable else 0.0 for r in tune_all]),
    )
    fitted = tuple(round(float(v), 3) for v in w)
    threshold = pick_threshold([confidence(r, fitted) for r in tune_ok])
    lines += [
        "",
        f"Confidence weights (bias, dense, overlap, coverage, unknown) = {fitted}; "
        f"threshold {threshold:.4f}",
        "",
        "| corpus | tune refused (answerable) | tune answered (unanswerable) |",
        "|---|---|---|",
    ]
    for corpus in (*CORPORA, "all"):
        rows = [r for r in tune_all if corpus in ("all", r.corpus)]
        refused = [confidence(r, fitted) < threshold for r in rows if r.answerable]
        answered = [confidence(r, fitted) >= threshold for r in rows if not r.answerable]
        lines.append(f"| {corpus} | {share(refused)} | {share(answered)} |")
    return lines


def confirm(services: Any, rows: Sequence[dict[str, Any]], half: str = "confirm") -> list[str]:
    """One half (the confirm half) through the answer service, extractive, shipped defaults."""
    from app.services.answers import AnswerRequest

    results: list[dict[str, Any]] = []
    for row in rows:
        if row["split"] != half:
            continue
        started = time.perf_counter()
        result = services.answers.answer_sync(
            CORPORA[row["corpus"]],
            AnswerRequest(question=row["question"], answer_mode="extractive"),
        )
        seconds = time.perf_counter() - started
        match = matcher(row["corpus"])
        evidence = " ".join(e.text for e in result.evidence)
        results.append(
            {
                "corpus": row["corpus"],
                "answerable": row["answerable"],
                "abstained": result.abstained,
                "contains": not result.abstained and match(result.answer, row["answer_contains"]),
                "evidence": match(evidence, row["answer_contains"]),
                "cited": any(c.cited for c in result.citations),
                "seconds": seconds,
            }
        )
    lines = [
        "| corpus | answer containment | evidence containment | cited (answered) | "
        "answerable refused | unanswerable answered | median s |",
        "|---|---|---|---|---|---|---:|",
    ]
    for corpus in (*CORPORA, "all"):
        rs = [r for r in results if corpus in ("all", r["corpus"])]
        ok = [r for r in rs if r["answerable"]]
        no = [r for r in rs if not r["answerable"]]
        answered = [r for r in rs if not r["abstained"]]
        lines.append(
            f"| {corpus} | {share([r['contains'] for r in ok])} | "
            f"{share([r['evidence'] for r in ok])} | {share([r['cited'] for r in answered])} | "
            f"{share([r['abstained'] for r in ok])} | {share([not r['abstained'] for r in no])} | "
            f"{statistics.median(r['seconds'] for r in rs):.2f} |"
        )
    return lines


def pick_on_tune(services: Any, rows: Sequence[dict[str, Any]]) -> list[str]:
    """The abstention threshold by the tuning rule, from the shipped reader's confidences.

    Answers the tune half through the answer service (extractive) and picks the highest
    ``RAG_LLM__ABSTAIN_BELOW`` refusing at most 5% of its answerable questions, as ``tune``
    does with its own fitted model: for re-choosing the threshold after a change elsewhere
    (loaders, retrieval) moved the confidences, without looking at the confirm half.
    """
    from app.services.answers import AnswerRequest

    scored: list[tuple[bool, float]] = []
    for row in rows:
        if row["split"] != "tune":
            continue
        result = services.answers.answer_sync(
            CORPORA[row["corpus"]],
            AnswerRequest(question=row["question"], answer_mode="extractive"),
        )
        scored.append((bool(row["answerable"]), float(result.confidence or 0.0)))
    threshold = pick_threshold([c for ok, c in scored if ok])
    refused = [c < threshold for ok, c in scored if ok]
    answered = [c >= threshold for ok, c in scored if not ok]
    return [
        f"tune half: RAG_LLM__ABSTAIN_BELOW={threshold} refuses {sum(refused)}/{len(refused)} "
        f"answerable and answers {sum(answered)}/{len(answered)} unanswerable questions"
    ]


def ensure_collection(services: Any, corpus: str, collection: str) -> None:
    """Ingest the corpus's files into ``collection`` unless it already holds chunks."""
    from app.services.container import build_pipeline
    from bench.eval.corpora import CORPORA as DEFINITIONS
    from core.errors import CollectionNotFound

    try:
        store = services.collections.get(collection)
    except CollectionNotFound:
        store = services.collections.create(collection)
    if store.count():
        return
    files = DEFINITIONS[corpus].files()
    log(f"ingesting {len(files)} files of {corpus} into {collection} (once; reruns reuse it)")
    pipeline = build_pipeline(services.settings, services.embedder)
    for path, source in files:
        pipeline.ingest_file(store, path, source)
    store.persist()
    services.search.changed(collection)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--reads", type=Path, help="cache of the scored sentences (pickle)")
    parser.add_argument("--confirm", action="store_true")
    parser.add_argument(
        "--pick-threshold",
        action="store_true",
        help="re-pick the abstention threshold on the tune half from the shipped reader",
    )
    parser.add_argument(
        "--half",
        choices=("confirm", "tune"),
        default="confirm",
        help="with --confirm: the half answered with the shipped defaults (tune: to check a "
        "change on the tuning half before the confirm half is run)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "answers.md")
    args = parser.parse_args()
    from app.services.container import build_services
    from app.settings import Settings

    rows = load_rows()
    services = build_services(Settings(data_dir=args.data_dir))
    out: list[str] = []
    try:
        for corpus, collection in CORPORA.items():
            ensure_collection(services, corpus, collection)
        services.search.keywords.wait()
        if args.pick_threshold:
            out = pick_on_tune(services, rows)
        elif args.confirm:
            out = confirm(services, rows, args.half)
        else:
            if args.reads and args.reads.exists():
                reads = pickle.loads(args.reads.read_bytes())
            else:
                reads = read_all(services, [r for r in rows if r["split"] == "tune"])
                if args.reads:
                    args.reads.write_bytes(pickle.dumps(reads))
            out = tune(reads)
    finally:
        services.close()
    text = "\n".join(out) + "\n"
    print(text)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
