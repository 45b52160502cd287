"""Why does our retrieval rank what it ranks? One change at a time, on the tune halves.

Usage::

    .venv/bin/python bench/retrieval_variants.py --variants base noprefix size256 ...
        [--corpora debian_reference postgresql python_docs] [--split tune]
        [--others 80] [--embed-cache DIR] [--out bench/results/retrieval_variants.md]

Each *variant* changes one thing of how a corpus becomes chunks (loader, chunk size, what is
prefixed to the embedded text, whether chunks may cross headings); the chunks are embedded by
the same all-MiniLM-L6-v2 (float32) and searched in memory with numpy (dense: cosine), with
``retrieval.bm25`` (BM25, the server's tokenizer) and with the server's fusion (hybrid), so
the numbers are those the server would give for those chunks. Each *fusion* (``--fusions``)
changes only how the dense and BM25 rankings are combined, over the base chunks.

Every variant is compared with ``base`` (the shipping defaults before #24) question by question: a
paired-bootstrap 95% interval of the difference (``retrieval.eval_stats``).

Cost: each variant embeds its chunks once (a shared ``--embed-cache`` keeps vectors by text,
so a variant whose texts are unchanged costs nothing); loaded documents are cached per loader
in the cache folder. ``--others N`` keeps, per HTML corpus, the pages of the selected
questions plus N other pages (every k-th, so the sample spreads over the corpus): a smaller
haystack, to explore on two shared cores; the full corpora are ``bench_retrieval.py``'s job.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.eval.corpora import CORPORA, Corpus, spread_sample  # noqa: E402
from bench.retrieval_cache import VectorCache  # noqa: E402
from bench.retrieval_fusions import CANDIDATES, FUSIONS, Rankings  # noqa: E402
from core.types import Chunk, Hit  # noqa: E402
from ingest.base import LoadedDocument, Section  # noqa: E402
from ingest.chunking import chunk_document, document_id_for  # noqa: E402
from ingest.limits import LoadLimits  # noqa: E402
from ingest.loaders import load_file  # noqa: E402
from retrieval.bm25 import BM25Index, KeywordTokenizer  # noqa: E402
from retrieval.eval_stats import METRICS, difference_intervals, metric_intervals  # noqa: E402
from retrieval.evaluation import (  # noqa: E402  # noqa: E402
    EvalQuestion,
    EvalReport,
    evaluate,
    load_questions,
    result_key,
    select,
)

TOP_K = 10
PDF_LOADERS = {  # PDF text engine, table detection, fewest columns of a table
    "pypdf": ("pypdf", True, 1),
    "cols2": ("pypdf", True, 2),
    "pdfium": ("pdfium", True, 2),
    "pdfium_notables": ("pdfium", False, 2),
}
_PDF_DEFAULT = PDF_LOADERS["pypdf"]  # ``ours``/``base``: the PDF loading before #24


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Variant:
    """How a corpus becomes chunks.

    Attributes:
        loader: ``ours`` (the server's loaders), ``pdfium`` (ours, PDF text by pypdfium2),
            ``pypdf`` (ours, PDF text by pypdf) or ``langchain`` (BSHTMLLoader/PyPDFLoader
            text, one section per page).
        size: Chunk size in tokens (what the model sees, prefix included).
        overlap: Chunk overlap in tokens.
        prefix: What precedes the text in the embedded (and BM25-indexed) text: ``path`` (the
            heading path, the server's way), ``title`` (the page's first heading only), ``none``.
        sections: ``headings`` (chunks never cross a heading, the server's way) or ``page``
            (a page is one section under its title: chunks cross headings, as LangChain's).
        splitter: ``tokens`` (the server's chunker) or ``langchain``
            (RecursiveCharacterTextSplitter(1000, 150) over the page's text).
    """

    loader: str = "ours"
    size: int = 200
    overlap: int = 30
    prefix: str = "path"
    sections: str = "headings"
    splitter: str = "tokens"


VARIANTS: dict[str, Variant] = {
    "base": Variant(),
    "pypdf": Variant(loader="pypdf"),
    "pdfium": Variant(loader="pdfium"),
    "pdfium_notables": Variant(loader="pdfium_notables"),
    "cols2": Variant(loader="cols2"),
    "noprefix": Variant(prefix="none"),
    "title": Variant(prefix="title"),
    "size256": Variant(size=256, overlap=40),
    "size128": Variant(size=128, overlap=20),
    "overlap0": Variant(overlap=0),
    "page": Variant(sections="page"),
    "lcsplit": Variant(splitter="langchain", prefix="none"),
    "lcsplit_title": Variant(splitter="langchain", prefix="title"),
    "lcload": Variant(loader="langchain"),
    "lcboth": Variant(loader="langchain", splitter="langchain", prefix="none"),
}


def load_documents(
    corpus: Corpus, files: Sequence[tuple[Path, str]], loader: str, cache: Path | None
) -> list[LoadedDocument]:
    """Load the files with ``loader``; cached (pickled) per corpus, loader and file list."""
    names = hashlib.sha1("\n".join(s for _, s in files).encode()).hexdigest()[:12]
    key = f"docs-{corpus.name}-{loader}-{len(files)}-{names}"
    path = cache / f"{key}.pkl" if cache else None
    if path and path.exists():
        return pickle.loads(path.read_bytes())  # type: ignore[no-any-return]
    started = time.perf_counter()
    if loader == "langchain":
        documents = langchain_documents(corpus, files)
    else:
        documents = [ours_document(p, s, loader) for p, s in files]
    log(
        f"{corpus.name}: loaded {len(files)} files with {loader} "
        f"in {time.perf_counter() - started:.0f} s"
    )
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(documents))
    return documents


def ours_document(path: Path, source: str, loader: str) -> LoadedDocument:
    """The server's loader; ``pypdf``/``pdfium`` pick the PDF text engine."""
    from ingest import office_loaders, pdf_pages

    engine, tables, columns = PDF_LOADERS.get(loader, _PDF_DEFAULT)
    office_loaders.PDF_TEXT_ENGINE = engine
    pdf_pages.PDF_TABLES, pdf_pages.MIN_TABLE_COLUMNS = tables, columns
    return load_file(path, source, LoadLimits(max_parse_seconds=3600.0))


def langchain_documents(corpus: Corpus, files: Sequence[tuple[Path, str]]) -> list[LoadedDocument]:
    """LangChain's loaders' text, one section per page (PDF: per physical page)."""
    from bench.langchain_baseline import load_native_documents

    by_source: dict[str, list[Section]] = {}
    for doc in load_native_documents(list(files), corpus.kind):
        source = doc.metadata["source"]
        page = doc.metadata.get("page")
        title = str(doc.metadata.get("title") or "")
        section = Section(
            doc.page_content,
            page=None if page is None else int(page) + 1,
            heading_path=(title,) if title else (),
        )
        by_source.setdefault(source, []).append(section)
    return [LoadedDocument(s, corpus.kind, sections) for s, sections in by_source.items()]


def as_page(document: LoadedDocument) -> LoadedDocument:
    """One section per page, under the page title, its headings kept as lines of text."""
    pages: dict[int | None, list[Section]] = {}
    for section in document.sections:
        pages.setdefault(section.page, []).append(section)
    merged = []
    for page, sections in pages.items():
        title = next((s.heading_path[0] for s in sections if s.heading_path), "")
        parts = []
        for s in sections:
            if len(s.heading_path) > 1:
                parts.append(s.heading_path[-1])
            parts.append(s.text)
        merged.append(
            Section("\n\n".join(parts), page=page, heading_path=(title,) if title else ())
        )
    return replace(document, sections=merged)


def prefixed(chunk: Chunk, prefix: str) -> Chunk:
    """The chunk with ``heading_path`` set to what ``prefix`` asks for."""
    path = str(chunk.metadata.get("heading_path") or "")
    heading = {"path": path, "title": path.split(" > ")[0], "none": ""}[prefix]
    return Chunk(
        chunk.id, chunk.document_id, chunk.text, {**chunk.metadata, "heading_path": heading}
    )


def langchain_chunks(document: LoadedDocument, prefix: str) -> list[Chunk]:
    """RecursiveCharacterTextSplitter(1000, 150) over each page's text."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=150)
    doc_id = document_id_for(document.source)
    chunks = []
    for section in as_page(document).sections:
        title = section.heading_path[0] if section.heading_path else ""
        for text in splitter.split_text(section.text):
            meta: dict[str, Any] = {"source": document.source, "heading_path": title}
            if section.page is not None:
                meta["page"] = section.page
            chunks.append(Chunk(f"{doc_id}:{len(chunks):05d}", doc_id, text, meta))
    return [prefixed(c, "title" if prefix == "title" else "none") for c in chunks]


def make_chunks(
    documents: Sequence[LoadedDocument], variant: Variant, tokenizer: Any
) -> list[Chunk]:
    """Chunk every document as the variant says."""
    chunks: list[Chunk] = []
    for document in documents:
        if variant.splitter == "langchain":
            chunks += langchain_chunks(document, variant.prefix)
            continue
        if variant.sections == "page":
            document = as_page(document)
        found = chunk_document(
            document,
            document_id_for(document.source),
            tokenizer,
            chunk_size=variant.size,
            chunk_overlap=min(variant.overlap, variant.size // 4),
        )
        chunks += [prefixed(c, variant.prefix) for c in found]
    return chunks


class Index:
    """Dense and BM25 rankings over one variant's chunks."""

    def __init__(self, chunks: list[Chunk], vectors: np.ndarray, queries: dict[str, np.ndarray]):
        self.chunks = chunks
        self.vectors = vectors
        self.queries = queries
        self.bm25 = BM25Index.build(chunks, KeywordTokenizer(), "x")
        self.tokenizer = KeywordTokenizer()

    def rankings(self, question: str) -> Rankings:
        scores = self.vectors @ self.queries[question]
        top = np.argsort(-scores)[:CANDIDATES]
        dense = [Hit(self.chunks[i], float(scores[i]), "cosine") for i in top]
        keyword = self.bm25.search(self.tokenizer(question), CANDIDATES)
        return Rankings(dense, keyword)


def evaluate_index(
    index: Index, questions: list[EvalQuestion], fusions: Sequence[str], label: str
) -> dict[str, EvalReport]:
    """One report per retrieval (dense, bm25 and each fusion)."""
    cached = {q.question: index.rankings(q.question) for q in questions}

    def run(pick: Callable[[Rankings], list[Hit]]) -> Callable[[str], list[str]]:
        return lambda q: [result_key(h.chunk.metadata) for h in pick(cached[q])[:TOP_K]]

    reports = {
        "dense": evaluate(questions, run(lambda r: r.dense), label=f"{label} dense"),
        "bm25": evaluate(questions, run(lambda r: r.keyword), label=f"{label} bm25"),
    }
    for name in fusions:
        reports[name] = evaluate(questions, run(FUSIONS[name]), label=f"{label} {name}")
    return reports


def corpus_files(
    corpus: Corpus, questions: Sequence[EvalQuestion], others: int | None
) -> list[Any]:
    """The corpus's files; with ``others``, the question pages plus ``others`` spread pages."""
    files = corpus.files()
    if others is None or corpus.kind != "html":
        return files
    return spread_sample(files, {q.source for q in questions}, others)


def row(name: str, mode: str, report: EvalReport, base: EvalReport | None, chunks: int) -> str:
    """A markdown row: metrics with intervals, and the paired difference to base."""
    cells = [str(i) for i in metric_intervals(report.results).values()]
    diffs = ["" for _ in METRICS]
    if base is not None and base is not report:
        found = difference_intervals(report.results, base.results)
        diffs = [
            f"{d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]{'*' * d.excludes_zero()}"
            for d in found.values()
        ]
    return f"| {name} | {mode} | {chunks} | " + " | ".join(cells + diffs) + " |"


def render_corpus(title: str, results: dict[str, tuple[int, dict[str, EvalReport]]]) -> list[str]:
    """The corpus's table: every variant and retrieval, with its difference to ``base``."""
    lines = [
        title,
        "",
        "| variant | retrieval | chunks | hit@1 | hit@5 | MRR@10 | Δ hit@1 | Δ hit@5 | Δ MRR@10 |",
        "|---|---|---:|---|---|---|---|---|---|",
    ]
    base = results.get("base", (0, {}))[1]
    for name, (chunks, reports) in results.items():
        for mode, report in reports.items():
            # base's fusions are compared with the shipping fusion, the variants with base
            reference = base.get("rrf_weighted") if name == "base" else base.get(mode)
            if name == "base" and mode in ("dense", "bm25"):
                reference = None
            lines.append(row(name, mode, report, reference, chunks))
    return [*lines, ""]


def embed_texts(
    texts: list[str], embedder: Any, cache: VectorCache | None, also: Sequence[Path]
) -> np.ndarray:
    """Vectors of ``texts``: from the cache, else (other runs' cache files), else embedded."""
    if cache is None:
        return np.asarray(embedder.embed(texts), dtype=np.float32)
    for path in also:
        if path.exists():
            other = VectorCache(path).cache
            cache.cache.update({k: v for k, v in other.items() if k not in cache.cache})
    vectors = cache.get(texts, embedder.embed)
    cache.save()
    return vectors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", nargs="+", choices=list(CORPORA), default=list(CORPORA))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["base"])
    parser.add_argument("--fusions", nargs="*", choices=list(FUSIONS), default=["rrf_weighted"])
    parser.add_argument("--split", choices=["tune", "confirm"], default="tune")
    parser.add_argument("--others", type=int, help="HTML corpora: question pages + N others")
    parser.add_argument("--embed-cache", type=Path, help="vectors by text, loaded documents")
    parser.add_argument("--also-cache", type=Path, nargs="*", default=[], help="npz to reuse")
    parser.add_argument("--out", type=Path, default=Path("bench/results/retrieval_variants.md"))
    args = parser.parse_args(argv)
    from ingest.embedders import create_embedder

    embedder: Any = create_embedder("all-MiniLM-L6-v2", backend="float32")
    embedder.query_ready.wait(600)
    cache = VectorCache(args.embed_cache / "ours.npz") if args.embed_cache else None
    haystack = (
        "every page"
        if args.others is None
        else f"HTML corpora: the questions' pages plus {args.others} others spread over the "
        "corpus; the PDF whole"
    )
    lines = [
        "# Retrieval variants, one change at a time",
        "",
        f"Command: `python bench/retrieval_variants.py {' '.join(argv or sys.argv[1:])}`",
        "",
        f"Questions: the {args.split} half. Corpus: {haystack}. Top 10 chunks; Δ: paired "
        "bootstrap 95% interval of the variant minus `base` in the same retrieval, and of each "
        "fusion of `base` minus the shipping fusion `rrf_weighted` (`*`: excludes 0). "
        "Fusions: `bench/retrieval_fusions.py`.",
        "",
    ]
    for name in args.corpora:
        corpus = CORPORA[name]
        questions = select(load_questions(corpus.questions_path), args.split)
        files = corpus_files(corpus, questions, args.others)
        queries = {
            q.question: np.asarray(embedder.embed_query(q.question), dtype=np.float32)
            for q in questions
        }
        title = f"## {name} ({len(files)} files, {len(questions)} questions)"
        results: dict[str, tuple[int, dict[str, EvalReport]]] = {}
        for variant_name in args.variants:
            variant = VARIANTS[variant_name]
            documents = load_documents(corpus, files, variant.loader, args.embed_cache)
            chunks = make_chunks(documents, variant, embedder.chunk_tokenizer)
            started = time.perf_counter()
            vectors = embed_texts(
                [c.embedding_text for c in chunks], embedder, cache, args.also_cache
            )
            seconds = time.perf_counter() - started
            log(f"{name} {variant_name}: {len(chunks)} chunks in {seconds:.0f} s")
            index = Index(chunks, vectors, queries)
            reports = evaluate_index(index, questions, args.fusions, variant_name)
            results[variant_name] = (len(chunks), reports)
            for mode, report in reports.items():
                m = report.metrics
                log(
                    f"  {mode}: hit@1 {m.hit_at_1:.3f} hit@5 {m.hit_at_5:.3f} MRR {m.mrr_at_10:.3f}"
                )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text("\n".join(lines + render_corpus(title, results)), encoding="utf-8")
        lines += render_corpus(title, results)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
