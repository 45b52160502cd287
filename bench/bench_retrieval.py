"""Retrieval quality on three corpora: ragserver (default, dense, BM25) vs plain LangChain.

Usage::

    .venv/bin/python bench/bench_retrieval.py [--corpora python_docs debian_reference postgresql]
        [--split tune|confirm] [--modes hybrid dense bm25] [--mmr] [--no-langchain]
        [--chunk-sizes 200] [--overlap 30] [--pages N] [--embed-cache DIR]
        [--resamples 2000] [--seed 0] [--out bench/results/retrieval_broad.md]

The corpora and their questions are ``bench/eval/`` (README there): the Python 3.11 docs (HTML,
369 pages, 85 questions), the Debian Reference (one PDF, 261 pages, 60 questions) and 281
PostgreSQL 15 reference pages (HTML, 63 questions), each question in a ``tune`` or ``confirm``
half. For each corpus, in one run: ragserver's ingestion pipeline (its loaders, token-aware
chunking with heading paths, the bundled all-MiniLM-L6-v2) ingests the corpus into a memory
store, the BM25 index is built, and the questions are searched through ``SearchService`` (top
10) in each mode, hybrid with the server's default weights (``RetrievalSettings``); then the
plain LangChain pipeline (``bench/langchain_baseline.py``: ``BSHTMLLoader`` or
``PyPDFLoader``, ``RecursiveCharacterTextSplitter(1000, 150)``, the same MiniLM, FAISS) answers
the same questions. A hit is the question's page (for the PDF, its page number). The report
gives hit@1, hit@5 and MRR@10 per corpus and per half with bootstrap 95% intervals, and ours
minus LangChain with paired-bootstrap intervals (``bench/retrieval_report.py``); it is
rewritten after each corpus, so a long run leaves what it finished.

``--embed-cache DIR`` reuses vectors of texts embedded by an earlier run (for iterating on
retrieval settings); ingest times are then not real and the report says so. ``--pages N``
keeps the question pages plus the first pages up to N of each HTML corpus (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.services.collections import CollectionService  # noqa: E402
from app.services.search import SearchService  # noqa: E402
from app.settings import IngestSettings, RetrievalSettings  # noqa: E402
from bench.eval.corpora import CORPORA, Corpus, spread_sample  # noqa: E402
from bench.retrieval_cache import CachedEmbedder, Timings, cached_langchain_embeddings  # noqa: E402
from bench.retrieval_report import Run, render, to_json  # noqa: E402
from ingest.limits import LoadLimits  # noqa: E402
from ingest.pipeline import IngestPipeline  # noqa: E402
from retrieval.bm25 import KeywordTokenizer  # noqa: E402
from retrieval.evaluation import (  # noqa: E402
    EvalQuestion,
    evaluate,
    load_questions,
    result_key,
    select,
)
from retrieval.keywords import KeywordIndexes  # noqa: E402
from retrieval.search import FUSIONS  # noqa: E402
from vectorstores.memory import MemoryClient  # noqa: E402

TOP_K = 10
COLLECTION = "bench"


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Search:
    """How our side searches: modes, fusion, BM25 tokenizer (the server's defaults by default)."""

    modes: Sequence[str]
    default_mode: str
    tokenizer: KeywordTokenizer
    mmr: bool
    rrf_k: int
    candidates: int
    weights: tuple[float, float]
    sweep: Sequence[float] = ()
    fusion: str = "rrf"
    also_fusions: Sequence[str] = ()


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


def timed(fn: Callable[[str], list[str]], times: list[float]) -> Callable[[str], list[str]]:
    def retrieve(question: str) -> list[str]:
        started = time.perf_counter()
        sources = fn(question)
        times.append(time.perf_counter() - started)
        return sources

    return retrieve


def ingest_ours(
    corpus: str,
    files: list[tuple[Path, str]],
    embedder: Any,
    size: int,
    overlap: int,
    timings: Timings,
) -> tuple[CollectionService, int, float, str]:
    """Ingest the files into a memory store; return the collections, chunks, seconds and a note."""
    client = MemoryClient()
    store = client.create_collection(COLLECTION, embedder.model_name, embedder.dimension)
    # The 261-page PDF can take over the server's 120 s parse bound on two shared cores.
    limits = LoadLimits(max_parse_seconds=3600.0)
    pipeline = IngestPipeline(embedder, chunk_size=size, chunk_overlap=overlap, limits=limits)
    log(f"{corpus}: ours chunk_size={size}: ingesting {len(files)} files")
    if isinstance(embedder, CachedEmbedder):  # count this ingest's reuse only
        embedder.vectors.hits = embedder.vectors.misses = 0
    started = time.perf_counter()
    failed = 0
    for number, (path, source) in enumerate(files, start=1):
        failed += pipeline.ingest_file(store, path, source).status == "failed"
        if number % 50 == 0:
            log(f"  {number}/{len(files)} files, {store.count()} chunks")
    seconds = time.perf_counter() - started
    chunks = store.count()
    log(f"  {chunks} chunks in {seconds:.0f} s ({failed} files failed)")
    reused = embedder.vectors.hits if isinstance(embedder, CachedEmbedder) else 0
    if isinstance(embedder, CachedEmbedder):
        embedder.vectors.save()
    key = f"ours|{corpus}|{embedder.model_name}|{size}|{overlap}|{len(files)}"
    seconds, note = timings.settle(key, seconds, reused, chunks)
    return CollectionService(client, embedder), chunks, seconds, note


def run_ours(
    corpus: str,
    files: list[tuple[Path, str]],
    questions: list[EvalQuestion],
    embedder: Any,
    chunking: tuple[int, int],
    search: Search,
    timings: Timings,
) -> list[Run]:
    collections, chunks, ingest_seconds, note = ingest_ours(
        corpus, files, embedder, *chunking, timings
    )
    keywords = KeywordIndexes(collections.get, search.tokenizer, None)
    started = time.perf_counter()
    keywords.get(COLLECTION).refresh()
    index_seconds = time.perf_counter() - started

    def service(weights: tuple[float, float], fusion: str = search.fusion) -> SearchService:
        return SearchService(
            collections,
            embedder,
            default_mode=search.default_mode,
            max_top_k=100,
            keywords=keywords,
            fusion=fusion,
            rrf_k=search.rrf_k,
            dense_weight=weights[0],
            keyword_weight=weights[1],
            candidates=search.candidates,
        )

    searcher = service(search.weights)
    variants = [(mode, False, "") for mode in search.modes]
    variants += [("hybrid", True, "")] if search.mmr else []
    variants += [("hybrid", False, fusion) for fusion in search.also_fusions]
    runs: list[Run] = []
    for mode, use_mmr, fusion in variants:
        times: list[float] = []
        chosen = service(search.weights, fusion) if fusion else searcher

        def keys(
            question: str, mode: str = mode, use_mmr: bool = use_mmr, s: Any = chosen
        ) -> list[str]:
            outcome = s.search(COLLECTION, question, TOP_K, mode=mode, mmr=use_mmr)
            return [result_key(hit.chunk.metadata) for hit in outcome.hits]

        label = f"{mode}+mmr" if use_mmr else f"{mode} {fusion}" if fusion else mode
        report = evaluate(questions, timed(keys, times), label=f"ours {label}")
        runs.append(
            Run(
                "ragserver",
                f"{chunking[0]}/{chunking[1]} tokens",
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
    for dense_weight in search.sweep if hybrid else ():
        swept = service((dense_weight, search.weights[1]))

        def fused(question: str, s: Any = swept) -> list[str]:
            outcome = s.search(COLLECTION, question, TOP_K, mode="hybrid")
            return [result_key(hit.chunk.metadata) for hit in outcome.hits]

        metrics = evaluate(questions, fused, label=f"sweep {dense_weight}").metrics
        hybrid.extra.setdefault("sweep", {})[str(dense_weight)] = metrics.as_dict()  # type: ignore[union-attr]
    searcher.close()
    return runs


OLD_FUSION = ("rrf", (0.7, 1.0))
"""The hybrid fusion shipped before #24: weighted RRF, dense 0.7 : BM25 1 (k=60)."""


@contextmanager
def old_pdf_loader() -> Iterator[None]:
    """PDF loading as shipped before #24: pypdf's text, ruled boxes of one column as tables."""
    from ingest import office_loaders, pdf_pages

    saved = office_loaders.PDF_TEXT_ENGINE, pdf_pages.MIN_TABLE_COLUMNS
    office_loaders.PDF_TEXT_ENGINE, pdf_pages.MIN_TABLE_COLUMNS = "pypdf", 1
    try:
        yield
    finally:
        office_loaders.PDF_TEXT_ENGINE, pdf_pages.MIN_TABLE_COLUMNS = saved


def run_old_default(
    corpus: str,
    files: list[tuple[Path, str]],
    questions: list[EvalQuestion],
    embedder: Any,
    chunking: tuple[int, int],
    search: Search,
    timings: Timings,
) -> list[Run]:
    """The hybrid default as shipped before #24 (its loader and fusion), for the paired test."""
    fusion, weights = OLD_FUSION
    old = replace(
        search,
        modes=["hybrid"],
        default_mode="hybrid",
        mmr=False,
        sweep=(),
        fusion=fusion,
        weights=weights,
        also_fusions=(),
    )
    with old_pdf_loader():
        found = run_ours(corpus, files, questions, embedder, chunking, old, timings)
    for run in found:
        run.label = "ours hybrid (old default)"
        run.extra["old_default"] = True
    return found


def run_langchain(
    corpus: Corpus,
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
        load_native_documents,
    )

    embeddings = langchain_embeddings()
    if cache is not None:
        embeddings = cached_langchain_embeddings(embeddings, cache)
    log(f"{corpus.name}: langchain: loading and indexing {len(files)} files")
    started = time.perf_counter()
    documents = load_native_documents(files, corpus.kind)
    load_seconds = time.perf_counter() - started
    vectorstore, stats = build_langchain_index(files, embeddings, documents=documents, log=log)
    log(f"  {stats.chunks} chunks in {load_seconds + stats.total_seconds:.0f} s")
    reused = embeddings.cache.hits if cache is not None else 0
    if cache is not None:
        embeddings.cache.save()
    total, note = timings.settle(
        f"langchain|{corpus.name}|{CHUNK_SIZE}|{CHUNK_OVERLAP}|{len(files)}",
        load_seconds + stats.total_seconds,
        reused,
        stats.chunks,
    )
    times: list[float] = []
    report = evaluate(
        questions,
        timed(lambda q: langchain_search(vectorstore, q, TOP_K), times),
        label="langchain",
    )
    m = report.metrics
    log(f"  langchain: hit@1 {m.hit_at_1:.3f} hit@5 {m.hit_at_5:.3f} MRR@10 {m.mrr_at_10:.3f}")
    loader = "PyPDFLoader" if corpus.kind == "pdf" else "BSHTMLLoader"
    return Run(
        "langchain",
        f"{loader}, RecursiveCharacterTextSplitter({CHUNK_SIZE}, {CHUNK_OVERLAP}), FAISS",
        "dense",
        stats.chunks,
        report,
        total,
        stats.index_seconds,
        1000 * statistics.mean(times),
        notes=note,
        extra={"load_seconds": load_seconds, "embed_seconds": stats.embed_seconds},
    )


def corpus_files(
    corpus: Corpus, questions: list[EvalQuestion], pages: int | None, others: int | None = None
) -> list[Any]:
    """The corpus's files; with ``pages``, the question pages plus the first others up to it.

    With ``others`` (HTML corpora): the haystack ``retrieval_variants.py --others`` explored on
    (the tune half's pages plus ``others`` pages spread over the rest), plus the pages of the
    other questions.
    """
    files = corpus.files()
    if others is not None and corpus.kind == "html":
        tune = {q.source for q in questions if q.split == "tune"}
        kept = {f[1] for f in spread_sample(files, tune, others)} | {q.source for q in questions}
        return [f for f in files if f[1] in kept]
    if pages and corpus.kind == "html":
        wanted = {q.source for q in questions}
        others = [f for f in files if f[1] not in wanted][: max(0, pages - len(wanted))]
        files = sorted([f for f in files if f[1] in wanted] + others, key=lambda f: f[1])
    return files


def header(args: argparse.Namespace, command: str, wall: float, sizes: dict[str, str]) -> list[str]:
    """The report's opening lines: command, corpora, machine, settings."""
    return [
        "# Retrieval quality on three corpora: ragserver vs a plain LangChain pipeline",
        "",
        f"Command: `{command}`",
        "",
        "Corpora and questions: `bench/eval/` (its README defines them): "
        + "; ".join(f"`{name}` {size}" for name, size in sizes.items())
        + f". Questions: {args.split or 'both halves'}. Top {TOP_K} chunks per question; a "
        "hit is the question's page (PDF: its page number); metrics from "
        "`retrieval/evaluation.py`, 95% intervals from a percentile bootstrap over the "
        f"questions ({args.resamples} resamples, seed {args.seed}; differences: paired).",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores (shared with other work, so "
        f"times are indicative), Python {platform.python_version()}. Whole run: "
        f"{wall / 60:.1f} min.",
        f"Ours: embedding backend {args.backend_used}, queries {args.query_backend_used}; BM25 "
        f"tokenizer `{args.tokenizer_signature}`; hybrid fusion `{args.fusion}`; "
        f"rrf_k={args.rrf_k}, candidates per "
        f"retriever={args.candidates}; hybrid weights dense:BM25 = "
        f"{args.dense_weight:g}:{args.keyword_weight:g}. `(default)` marks the shipping default "
        "(mode, chunking and weights of `app/settings.py`). LangChain: its loader, "
        "RecursiveCharacterTextSplitter(1000, 150), the same MiniLM (float32), FAISS.",
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ingest, retrieval = IngestSettings(), RetrievalSettings()  # the server's defaults
    parser.add_argument("--corpora", nargs="+", choices=list(CORPORA), default=list(CORPORA))
    parser.add_argument("--split", choices=["tune", "confirm"], help="only this half")
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=[ingest.chunk_size])
    parser.add_argument("--overlap", type=int, default=ingest.chunk_overlap)
    modes = [retrieval.mode] + [m for m in ("dense", "bm25", "hybrid") if m != retrieval.mode]
    parser.add_argument("--modes", nargs="+", default=modes[:3])
    parser.add_argument("--mmr", action="store_true", help="also hybrid with MMR")
    parser.add_argument("--no-langchain", action="store_true")
    parser.add_argument("--pages", type=int, help="smoke run: question pages + first N")
    parser.add_argument(
        "--others",
        nargs="*",
        default=[],
        metavar="CORPUS=N",
        help="that HTML corpus: question pages + N spread others (a smaller haystack)",
    )
    parser.add_argument("--fusion", default=retrieval.fusion, choices=list(FUSIONS))
    parser.add_argument(
        "--also-fusions", nargs="*", default=[], choices=list(FUSIONS), help="more hybrid rows"
    )
    parser.add_argument(
        "--old-default",
        action="store_true",
        help="also the shipping default before #24 (pypdf text, weighted RRF)",
    )
    parser.add_argument("--stemmer", help="BM25 stemmer language (needs PyStemmer)")
    parser.add_argument("--no-stopwords", action="store_true")
    parser.add_argument("--rrf-k", type=int, default=retrieval.rrf_k)
    parser.add_argument("--candidates", type=int, default=retrieval.candidates)
    parser.add_argument("--dense-weight", type=float, default=retrieval.dense_weight)
    parser.add_argument("--keyword-weight", type=float, default=retrieval.keyword_weight)
    parser.add_argument("--sweep-dense-weights", type=float, nargs="*", default=[])
    parser.add_argument("--embed-cache", type=Path, help="reuse embeddings across runs")
    parser.add_argument(
        "--backend", default="float32", choices=["float32", "bfloat16", "onnx-int8", "auto"]
    )
    parser.add_argument("--queries-int8", action="store_true", help="int8 ONNX queries")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--out", type=Path, default=Path("bench/results/retrieval_broad.md"))
    args = parser.parse_args(argv)
    args.shipping_mode = retrieval.mode
    args.shipping = (
        ingest.chunk_size,
        min(ingest.chunk_overlap, ingest.chunk_size // 4),
        retrieval.dense_weight,
        retrieval.keyword_weight,
        retrieval.fusion,
    )
    return args


def load_embedder(args: argparse.Namespace) -> Any:
    from ingest.embedders import create_embedder

    # float32 by default: the same numbers LangChain's HuggingFaceEmbeddings computes.
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
    return embedder


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    from bs4 import XMLParsedAsHTMLWarning

    # The PostgreSQL pages are XHTML: both loaders parse them as HTML, on purpose.
    warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)
    args = parse_args(argv)
    command = "python bench/bench_retrieval.py " + " ".join(argv or sys.argv[1:])
    wall_start = time.perf_counter()
    tokenizer = KeywordTokenizer(stopwords=not args.no_stopwords, stemmer=args.stemmer)
    args.tokenizer_signature = tokenizer.signature
    search = Search(
        args.modes,
        args.modes[0] if "hybrid" not in args.modes else "hybrid",
        tokenizer,
        args.mmr,
        args.rrf_k,
        args.candidates,
        (args.dense_weight, args.keyword_weight),
        args.sweep_dense_weights,
        args.fusion,
        args.also_fusions,
    )
    embedder = load_embedder(args)
    timings = Timings(args.embed_cache)
    by_corpus: dict[str, list[Run]] = {}
    sizes: dict[str, str] = {}
    for name in args.corpora:
        corpus = CORPORA[name]
        if not corpus.installed():
            raise SystemExit(f"{corpus.root} is missing: apt-get install {corpus.package}")
        questions = select(load_questions(corpus.questions_path), args.split)
        others = dict(item.split("=") for item in args.others).get(name)
        files = corpus_files(corpus, questions, args.pages, None if others is None else int(others))
        sizes[name] = f"{len(files)} files, {len(questions)} questions"
        runs: list[Run] = []
        for number, size in enumerate(args.chunk_sizes):
            overlap = min(args.overlap, size // 4)
            found = run_ours(name, files, questions, embedder, (size, overlap), search, timings)
            setting = (size, overlap, args.dense_weight, args.keyword_weight, args.fusion)
            for run in found:
                run.default = run.mode == args.shipping_mode and setting == args.shipping
            runs += found
            if number == 0 and args.old_default:
                runs += run_old_default(
                    name, files, questions, embedder, (size, overlap), search, timings
                )
            if number == 0 and not args.no_langchain:
                runs.append(run_langchain(corpus, files, questions, args.embed_cache, timings))
        by_corpus[name] = runs
        write(by_corpus, args, command, time.perf_counter() - wall_start, sizes)
    print(args.out.read_text(encoding="utf-8").split("## Per corpus")[0])
    return 0


def write(
    by_corpus: dict[str, list[Run]],
    args: argparse.Namespace,
    command: str,
    wall: float,
    sizes: dict[str, str],
) -> None:
    """Write the markdown report and its JSON twin (after each corpus)."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines = header(args, command, wall, sizes)
    args.out.write_text(render(by_corpus, lines, args.resamples, args.seed), encoding="utf-8")
    data = to_json(by_corpus, args.resamples, args.seed)
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    log(f"wrote {args.out} and {args.out.with_suffix('.json')} ({wall / 60:.1f} min)")


if __name__ == "__main__":
    raise SystemExit(main())
