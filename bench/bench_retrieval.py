"""Retrieval quality on the Python 3.11 docs dev set: ragserver vs a plain LangChain pipeline.

Usage::

    .venv/bin/python bench/bench_retrieval.py [--chunk-sizes 128 200 256] [--overlap 30]
        [--modes dense bm25 hybrid] [--no-mmr] [--no-langchain] [--pages N]
        [--stemmer english] [--embed-cache DIR] [--queries-int8]
        [--out bench/results/retrieval.md]

In one run: for each chunk size, ragserver's ingestion pipeline (HTML loader, token-aware
chunking with heading paths, the bundled all-MiniLM-L6-v2) ingests the 369 corpus pages
(``bench/corpus.py``) into a memory store, the BM25 index is built, and the 40 dev questions
are searched in each mode through ``SearchService`` (top 10); then the LangChain baseline
(``bench/langchain_baseline.py``) indexes the same page text and answers the same questions.
Metrics (hit@1, hit@5, MRR@10 by source page) come from ``retrieval.evaluation``.

``--embed-cache DIR`` reuses vectors of texts embedded by an earlier run (for iterating on
retrieval settings); ingest times are then not real and the report says so. ``--pages N``
keeps the question pages plus the first pages up to N (a quick smoke run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from app.services.collections import CollectionService  # noqa: E402
from app.services.search import SearchService  # noqa: E402
from app.settings import RetrievalSettings  # noqa: E402
from bench.corpus import DOC_ROOT, QUESTIONS, corpus_files  # noqa: E402
from ingest.limits import LoadLimits  # noqa: E402
from ingest.pipeline import IngestPipeline  # noqa: E402
from retrieval.bm25 import KeywordTokenizer  # noqa: E402
from retrieval.evaluation import (  # noqa: E402
    EvalQuestion,
    EvalReport,
    evaluate,
    load_questions,
)
from retrieval.keywords import KeywordIndexes  # noqa: E402
from vectorstores.memory import MemoryClient  # noqa: E402

TOP_K = 10
COLLECTION = "bench"


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


class VectorCache:
    """Vectors by text hash, kept in one ``.npz`` file; counts hits and misses."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cache: dict[str, np.ndarray] = {}
        self.hits = self.misses = 0
        if path.exists():
            data = np.load(path)
            self.cache = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    def get(self, texts: Sequence[str], embed: Any) -> np.ndarray:
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in self.cache]
        if missing:
            vectors = np.asarray(embed([texts[i] for i in missing]), dtype=np.float32)
            for i, vector in zip(missing, vectors, strict=True):
                self.cache[keys[i]] = vector
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        return np.stack([self.cache[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self.cache), dtype="U40")
        vectors = np.stack(list(self.cache.values())) if self.cache else np.zeros((0, 1))
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vectors=vectors)
        os.replace(tmp, self.path)


class Timings:
    """Ingest times of runs that really embedded, so cached reruns can report them."""

    def __init__(self, folder: Path | None) -> None:
        self.path = folder / "timings.json" if folder else None
        self.data: dict[str, Any] = {}
        if self.path and self.path.exists():
            self.data = json.loads(self.path.read_text())

    def settle(self, key: str, measured: float, reused: int, total: int) -> tuple[float, str]:
        """Return the ingest seconds to report and a note.

        ``reused`` of ``total`` vectors came from the cache: with none, the time is real and
        recorded; otherwise a recorded real time is reported if there is one.
        """
        if not reused:
            self.data[key] = {"seconds": measured, "date": time.strftime("%Y-%m-%d %H:%M")}
            if self.path:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(json.dumps(self.data, indent=1))
            return measured, ""
        if key in self.data:
            earlier = self.data[key]
            return float(earlier["seconds"]), f"time of the uncached run {earlier['date']}"
        return measured, f"{reused} of {total} chunk vectors from the cache: time understated"


def use_int8_queries(embedder: Any) -> None:
    """Embed ``embedder``'s queries on the int8 ONNX export (made once, cached like its own)."""
    import tempfile

    from ingest import onnx_export
    from ingest.embedders import bundled_model_path, query_session

    path = onnx_export.export_onnx(
        embedder._model,
        bundled_model_path(),
        Path(tempfile.gettempdir()) / "ragserver",
        embedder.model_name,
        "int8",
    )
    embedder._onnx_query = query_session(path)
    log(f"queries on {path}")


class CachedEmbedder:
    """Wraps an embedder, reusing vectors of texts seen before (stored in ``folder``)."""

    def __init__(self, inner: Any, folder: Path) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.max_seq_length = inner.max_seq_length
        self.chunk_tokenizer = inner.chunk_tokenizer
        self.cache_namespace = inner.cache_namespace
        self.backend_info = inner.backend_info
        self.vectors = VectorCache(folder / "ours.npz")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.vectors.get(texts, self.inner.embed)

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)

    def count_tokens(self, text: str) -> int:
        return int(self.inner.count_tokens(text))


def cached_langchain_embeddings(inner: Any, folder: Path) -> Any:
    """A LangChain ``Embeddings`` reusing vectors of texts seen before."""
    from langchain_core.embeddings import Embeddings

    vectors = VectorCache(folder / "langchain.npz")

    class Cached(Embeddings):
        cache = vectors

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return vectors.get(texts, inner.embed_documents).tolist()  # type: ignore[no-any-return]

        def embed_query(self, text: str) -> list[float]:
            return inner.embed_query(text)  # type: ignore[no-any-return]

    return Cached()


@dataclass
class Run:
    """One row of the report."""

    system: str
    setting: str
    mode: str
    chunks: int
    report: EvalReport
    ingest_seconds: float
    index_seconds: float
    query_ms: float
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def timed_retrieve(fn: Any, times: list[float]) -> Any:
    def retrieve(question: str) -> list[str]:
        started = time.perf_counter()
        sources = fn(question)
        times.append(time.perf_counter() - started)
        return sources

    return retrieve


def run_ours(
    files: list[tuple[Path, str]],
    questions: list[EvalQuestion],
    embedder: Any,
    chunk_size: int,
    overlap: int,
    modes: Sequence[str],
    tokenizer: KeywordTokenizer,
    mmr: bool,
    rrf_k: int,
    candidates: int,
    weights: tuple[float, float],
    timings: Timings,
    sweep: Sequence[float] = (),
) -> list[Run]:
    client = MemoryClient()
    store = client.create_collection(COLLECTION, embedder.model_name, embedder.dimension)
    collections = CollectionService(client, embedder)
    pipeline = IngestPipeline(
        embedder, chunk_size=chunk_size, chunk_overlap=overlap, limits=LoadLimits()
    )
    log(f"ours chunk_size={chunk_size}: ingesting {len(files)} pages")
    if isinstance(embedder, CachedEmbedder):  # count this ingest's reuse only
        embedder.vectors.hits = embedder.vectors.misses = 0
    started = time.perf_counter()
    failed = 0
    for number, (path, source) in enumerate(files, start=1):
        result = pipeline.ingest_file(store, path, source)
        failed += result.status == "failed"
        if number % 50 == 0:
            log(f"  {number}/{len(files)} pages, {store.count()} chunks")
    ingest_seconds = time.perf_counter() - started
    chunks = store.count()
    log(f"  {chunks} chunks in {ingest_seconds:.0f} s ({failed} pages failed)")
    reused = embedder.vectors.hits if isinstance(embedder, CachedEmbedder) else 0
    if isinstance(embedder, CachedEmbedder):
        embedder.vectors.save()
    key = f"ours|{embedder.model_name}|{chunk_size}|{overlap}|{len(files)}"
    ingest_seconds, note = timings.settle(key, ingest_seconds, reused, chunks)
    keywords = KeywordIndexes(collections.get, tokenizer, None)
    started = time.perf_counter()
    keywords.get(COLLECTION).refresh()
    index_seconds = time.perf_counter() - started

    def service(fusion_weights: tuple[float, float]) -> SearchService:
        return SearchService(
            collections,
            embedder,
            default_mode="hybrid",
            max_top_k=100,
            keywords=keywords,
            rrf_k=rrf_k,
            dense_weight=fusion_weights[0],
            keyword_weight=fusion_weights[1],
            candidates=candidates,
        )

    search = service(weights)
    setting = f"chunk_size={chunk_size}, overlap={overlap}"
    variants: list[tuple[str, str, bool, SearchService]] = [(m, m, False, search) for m in modes]
    if "hybrid" in modes and weights != (1.0, 1.0):
        variants.append(("hybrid 1:1", "hybrid", False, service((1.0, 1.0))))
    if mmr:
        variants.append(("hybrid+mmr", "hybrid", True, search))
    runs: list[Run] = []
    for label, mode, use_mmr, searcher in variants:
        times: list[float] = []

        def sources(
            question: str, mode: str = mode, use_mmr: bool = use_mmr, s: Any = searcher
        ) -> list[str]:
            outcome = s.search(COLLECTION, question, TOP_K, mode=mode, mmr=use_mmr)
            return [str(hit.chunk.metadata.get("source", "")) for hit in outcome.hits]

        report = evaluate(questions, timed_retrieve(sources, times), label=f"ours {label}")
        runs.append(
            Run(
                "ragserver",
                setting,
                label,
                chunks,
                report,
                ingest_seconds,
                index_seconds if mode != "dense" else 0.0,
                1000 * statistics.mean(times),
                notes=note,
            )
        )
        m = report.metrics
        log(f"  {label}: hit@1 {m.hit_at_1:.3f} hit@5 {m.hit_at_5:.3f} MRR@10 {m.mrr_at_10:.3f}")
    hybrid = next((run for run in runs if run.mode == "hybrid"), None)
    for dense_weight in sweep if hybrid else ():
        swept = service((dense_weight, weights[1]))

        def fused(question: str, s: Any = swept) -> list[str]:
            outcome = s.search(COLLECTION, question, TOP_K, mode="hybrid")
            return [str(hit.chunk.metadata.get("source", "")) for hit in outcome.hits]

        metrics = evaluate(questions, fused, label=f"sweep {dense_weight}").metrics
        hybrid.extra.setdefault("sweep", {})[dense_weight] = metrics  # type: ignore[union-attr]
    search.close()
    return runs


def run_langchain(
    files: list[tuple[Path, str]],
    questions: list[EvalQuestion],
    cache: Path | None,
    timings: Timings,
) -> Run:
    from bench.langchain_baseline import (
        CHUNK_OVERLAP,
        CHUNK_SIZE,
        build_langchain_index,
        langchain_embeddings,
        langchain_search,
    )

    embeddings = langchain_embeddings()
    if cache is not None:
        embeddings = cached_langchain_embeddings(embeddings, cache)
    log(f"langchain: indexing {len(files)} pages")
    vectorstore, stats = build_langchain_index(files, embeddings, log=log)
    log(f"  {stats.chunks} chunks in {stats.total_seconds:.0f} s")
    reused = embeddings.cache.hits if cache is not None else 0
    if cache is not None:
        embeddings.cache.save()
    total, note = timings.settle(
        f"langchain|{CHUNK_SIZE}|{CHUNK_OVERLAP}|{len(files)}",
        stats.total_seconds,
        reused,
        stats.chunks,
    )
    times: list[float] = []
    report = evaluate(
        questions,
        timed_retrieve(lambda q: langchain_search(vectorstore, q, TOP_K), times),
        label="langchain",
    )
    m = report.metrics
    log(f"  langchain: hit@1 {m.hit_at_1:.3f} hit@5 {m.hit_at_5:.3f} MRR@10 {m.mrr_at_10:.3f}")
    return Run(
        "langchain",
        f"RecursiveCharacterTextSplitter({CHUNK_SIZE}, {CHUNK_OVERLAP}) + FAISS",
        "dense",
        stats.chunks,
        report,
        total,
        stats.index_seconds,
        1000 * statistics.mean(times),
        notes=note,
        extra={
            "load_seconds": stats.load_seconds,
            "embed_seconds": stats.embed_seconds,
            "split_seconds": stats.split_seconds,
        },
    )


def render(runs: list[Run], args: argparse.Namespace, command: str, wall: float) -> str:
    lines = [
        "# Retrieval quality: ragserver vs a plain LangChain pipeline",
        "",
        f"Command: `{command}`",
        "",
        f"Corpus: {args.pages_used} pages of the Python 3.11 docs (`bench/corpus.py`, as "
        "`/work/shared/eval/README.md` defines them); questions: "
        f"{args.questions_used} from `{args.questions}`; top {TOP_K} chunks per question; "
        "metrics by source page (`retrieval/evaluation.py`).",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores (shared with other work, so "
        f"wall times are indicative), Python {platform.python_version()}. "
        f"Whole run: {wall / 60:.1f} min.",
        f"Our embedding backend: {args.backend_used}, queries {args.query_backend_used} "
        "(LangChain: float32). "
        f"BM25 tokenizer: `{args.tokenizer_signature}`; rrf_k={args.rrf_k}, "
        f"candidates per retriever={args.candidates}; hybrid weights dense:BM25 = "
        f"{args.dense_weight:g}:{args.keyword_weight:g} (`hybrid 1:1`: plain RRF).",
    ]
    if any(run.notes for run in runs):
        lines.append(
            "Some embeddings came from the cache (`--embed-cache`): such rows report the time of "
            "an earlier run that embedded everything, or say how much was reused (notes)."
        )
    lines += [
        "",
        "| system | chunking | mode | chunks | hit@1 | hit@5 | MRR@10 | ingest s | "
        "index s | query ms | notes |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        m = run.report.metrics
        lines.append(
            f"| {run.system} | {run.setting} | {run.mode} | {run.chunks} | {m.hit_at_1:.3f} | "
            f"{m.hit_at_5:.3f} | {m.mrr_at_10:.3f} | {run.ingest_seconds:.0f} | "
            f"{run.index_seconds:.1f} | {run.query_ms:.0f} | {run.notes} |"
        )
    lines += [
        "",
        "Ingest seconds: loading, chunking, embedding and storing every page (LangChain: "
        "loading the same text, splitting, `embed_documents`, `FAISS.from_embeddings`). Index "
        "s: building the BM25 index (ours; once per chunk setting, shared by the bm25 and "
        "hybrid rows) or `FAISS.from_embeddings` (LangChain). "
        "Query ms: mean search time per question (hybrid+mmr re-embeds 20 candidates).",
    ]
    baseline = next((r for r in runs if r.system == "langchain"), None)
    if baseline is not None:
        b = baseline.report.metrics
        lines += ["", "Difference to LangChain (points of hit@1 and hit@5, MRR@10):", ""]
        lines += ["| chunking | mode | Δ hit@1 | Δ hit@5 | Δ MRR@10 |", "|---|---|---:|---:|---:|"]
        for run in runs:
            if run is baseline:
                continue
            m = run.report.metrics
            lines.append(
                f"| {run.setting} | {run.mode} | {100 * (m.hit_at_1 - b.hit_at_1):+.1f} | "
                f"{100 * (m.hit_at_5 - b.hit_at_5):+.1f} | {m.mrr_at_10 - b.mrr_at_10:+.3f} |"
            )
    swept = [run for run in runs if "sweep" in run.extra]
    if swept:
        lines += [
            "",
            f"## Hybrid fusion weight sweep (dense weight, BM25 weight {args.keyword_weight:g})",
            "",
            "| chunking | dense weight | hit@1 | hit@5 | MRR@10 |",
            "|---|---:|---:|---:|---:|",
        ]
        for run in swept:
            for weight, m in sorted(run.extra["sweep"].items()):
                lines.append(
                    f"| {run.setting} | {weight:g} | {m.hit_at_1:.3f} | {m.hit_at_5:.3f} | "
                    f"{m.mrr_at_10:.3f} |"
                )
    lines += ["", "## Rank of the source page per question", ""]
    names = [f"{'LangChain ' if r.system == 'langchain' else ''}{r.mode} {r.chunks}" for r in runs]
    header = "| id | source | " + " | ".join(names) + " |"
    lines += [header, "|---|---|" + "---:|" * len(runs)]
    first = runs[0].report.results
    for i, result in enumerate(first):
        ranks = [r.report.results[i].rank for r in runs]
        cells = " | ".join("-" if rank is None else str(rank) for rank in ranks)
        lines.append(f"| {result.id} | {result.source} | {cells} |")
    lines += ["", "(`-`: the page is not in the top 10.)", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doc-root", type=Path, default=DOC_ROOT)
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=[128, 200, 256])
    parser.add_argument("--overlap", type=int, default=30)
    parser.add_argument("--modes", nargs="+", default=["dense", "bm25", "hybrid"])
    parser.add_argument("--no-mmr", action="store_true", help="skip the hybrid+mmr row")
    parser.add_argument("--no-langchain", action="store_true")
    parser.add_argument("--pages", type=int, help="smoke run on question pages + first N")
    parser.add_argument("--stemmer", help="BM25 stemmer language (needs PyStemmer)")
    parser.add_argument("--no-stopwords", action="store_true")
    defaults = RetrievalSettings()  # the server's defaults, so the report measures them
    parser.add_argument("--rrf-k", type=int, default=defaults.rrf_k)
    parser.add_argument("--candidates", type=int, default=defaults.candidates)
    parser.add_argument("--dense-weight", type=float, default=defaults.dense_weight)
    parser.add_argument("--keyword-weight", type=float, default=defaults.keyword_weight)
    parser.add_argument(
        "--sweep-dense-weights",
        type=float,
        nargs="*",
        default=[],
        help="also evaluate hybrid with each of these dense weights (a table of its own)",
    )
    parser.add_argument("--embed-cache", type=Path, help="reuse embeddings across runs")
    parser.add_argument(
        "--backend",
        default="float32",
        choices=["float32", "bfloat16", "onnx-int8", "auto"],
        help="our embedding backend (LangChain always runs float32)",
    )
    parser.add_argument(
        "--queries-int8",
        action="store_true",
        help="an experiment: queries on the int8 ONNX export, documents on --backend",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/retrieval.md"))
    args = parser.parse_args(argv)
    command = "python bench/bench_retrieval.py " + " ".join(argv or sys.argv[1:])
    wall_start = time.perf_counter()

    questions = load_questions(args.questions)
    files = corpus_files(args.doc_root)
    if args.pages:
        wanted = {q.source for q in questions}
        files = [f for f in files if f[1] in wanted] + [f for f in files if f[1] not in wanted][
            : max(0, args.pages - len(wanted))
        ]
        files.sort(key=lambda f: f[1])
    args.pages_used, args.questions_used = len(files), len(questions)
    tokenizer = KeywordTokenizer(stopwords=not args.no_stopwords, stemmer=args.stemmer)
    args.tokenizer_signature = tokenizer.signature

    from ingest.embedders import create_embedder

    # float32 by default: the same numbers LangChain's HuggingFaceEmbeddings computes.
    # (an int8 export is cached in the embedder's default temp folder, keyed by model and versions)
    embedder: Any = create_embedder("all-MiniLM-L6-v2", backend=args.backend)
    args.backend_used = embedder.backend
    if not embedder.query_ready.wait(600):
        raise RuntimeError("the query backend did not come up within 600 s")
    args.query_backend_used = embedder.query_backend
    if args.queries_int8:
        args.query_backend_used = "onnx-int8"
        use_int8_queries(embedder)
    if args.embed_cache:
        if embedder.backend != "float32":  # vectors are cached by text: one folder per backend
            args.embed_cache = args.embed_cache / embedder.backend
        embedder = CachedEmbedder(embedder, args.embed_cache)
    timings = Timings(args.embed_cache)
    runs: list[Run] = []
    for number, size in enumerate(args.chunk_sizes):
        runs += run_ours(
            files,
            questions,
            embedder,
            size,
            min(args.overlap, size // 4),
            args.modes,
            tokenizer,
            mmr=not args.no_mmr,
            rrf_k=args.rrf_k,
            candidates=args.candidates,
            weights=(args.dense_weight, args.keyword_weight),
            timings=timings,
            sweep=args.sweep_dense_weights,
        )
        if number == 0 and not args.no_langchain:
            # Right after the first setting, so a long run has the comparison early.
            runs.append(run_langchain(files, questions, args.embed_cache, timings))

    wall = time.perf_counter() - wall_start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(runs, args, command, wall), encoding="utf-8")
    data = [
        {
            "system": r.system,
            "setting": r.setting,
            "mode": r.mode,
            "chunks": r.chunks,
            "ingest_seconds": r.ingest_seconds,
            "index_seconds": r.index_seconds,
            "query_ms": r.query_ms,
            **{k: v for k, v in r.extra.items() if k != "sweep"},
            **(
                {"sweep": {str(w): m.as_dict() for w, m in r.extra["sweep"].items()}}
                if "sweep" in r.extra
                else {}
            ),
            **r.report.to_json(),
        }
        for r in runs
    ]
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    log(f"wrote {args.out} and {args.out.with_suffix('.json')} ({wall / 60:.1f} min)")
    print(args.out.read_text(encoding="utf-8").split("## Rank")[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
