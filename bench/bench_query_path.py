"""Where a search's time goes, in-process: the query embedding and the vector search.

Usage::

    .venv/bin/python bench/bench_query_path.py [--chunks 100000] [--batch 8] [--repeats 20]
        [--out bench/results/query_path.md]

Measured in one process, one after another, each as the median of ``--repeats`` calls:

* the query embedding of the 40 dev questions (about 31 tokens each) with each embedding
  backend the CPU runs natively (float32 through torch; float32 documents with queries on the
  ONNX float32 export, the default; onnx-int8; and bfloat16 where the CPU has native bfloat16),
  one query at a time and ``--batch`` concurrent calls (as concurrent requests make them: torch
  coalesces them into one forward pass, an ONNX session runs them side by side), with the
  threads the server gives queries (torch: one per forward pass; the ONNX query session: one
  per CPU, not spinning, and, as its baseline, the same export on one thread);
* a FAISS flat search (top 10) over ``--chunks`` random unit vectors: one query, ``--batch``
  queries one after another, and the same ``--batch`` queries in one ``search_many`` call (what
  the server does with concurrent unfiltered searches); with ``--hnsw`` also an HNSW index.

Ratios are between rows of the same run; absolute numbers move with the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIM = 384


def log(line: str) -> None:
    print(f"[bench_query_path {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def median_ms(call: Callable[[int], Any], repeats: int) -> float:
    call(0)  # warm-up
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def embedding_rows(
    queries: list[str], batch: int, repeats: int
) -> tuple[list[tuple[str, float, float, float]], float]:
    """The query-embedding rows, and the queries' mean token count (special tokens included)."""
    import torch

    from bench.bench_search_load import own_cpu_seconds
    from ingest.backends import native_bf16
    from ingest.embedders import create_embedder

    # (documents' backend, query backend): float32 documents with queries on torch, then with
    # queries on the ONNX float32 export (the default, same vectors), then the other backends.
    backends = [("float32", "same"), ("float32", "onnx-float32"), ("onnx-int8", "same")]
    backends += [("bfloat16", "same")] if native_bf16() else []

    def measure(embedder: Any) -> tuple[float, float, float]:
        """One query at a time, then ``batch`` concurrent calls (as concurrent requests).

        Also the CPU time per query of the concurrent calls: what bounds the queries per
        second of a busy machine.
        """
        one = median_ms(lambda i: embedder.embed_query(queries[i % len(queries)]), repeats)
        with ThreadPoolExecutor(batch) as pool:
            before = own_cpu_seconds()
            many_repeats = max(3, repeats // 4)
            many = median_ms(
                lambda i: list(
                    pool.map(
                        embedder.embed_query,
                        [queries[(i * batch + j) % len(queries)] for j in range(batch)],
                    )
                ),
                many_repeats,
            )
            cpu_ms = (own_cpu_seconds() - before) * 1000 / ((many_repeats + 1) * batch)
        return one, many, cpu_ms

    rows = []
    tokens = 0.0
    for backend, query_backend in backends:
        embedder: Any = create_embedder(
            "all-MiniLM-L6-v2", backend=backend, query_backend=query_backend
        )
        if not embedder.query_ready.wait(600) or (
            query_backend != "same" and embedder.query_backend != query_backend
        ):
            raise RuntimeError(f"the {query_backend} query backend did not come up")
        label = backend if query_backend == "same" else f"{backend}, queries {query_backend}"
        tokens = tokens or statistics.fmean(embedder.count_tokens(q) for q in queries)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as the server embeds queries on torch
        try:
            one, many, cpu = measure(embedder)
            rows.append((label, one, many, cpu))
            log(
                f"embedding {label}: 1 query {one:.1f} ms, {batch} at once {many:.1f} ms, "
                f"CPU {cpu:.1f} ms per query"
            )
            session = getattr(embedder, "_onnx_query", None)
            if query_backend == "onnx-float32" and session is not None and session.threads > 1:
                # The baseline of the query session's threads: the same export on one thread
                # with onnxruntime's default (spinning) pool, as the server ran it before.
                from ingest.onnx_export import OnnxSession

                embedder._onnx_query = OnnxSession(session.path, threads=1)
                one, many, cpu = measure(embedder)
                embedder._onnx_query = session
                rows.append((f"{label}, 1 thread (before)", one, many, cpu))
                log(
                    f"embedding {label}, 1 thread: 1 query {one:.1f} ms, {batch} at once {many:.1f}"
                )
        finally:
            torch.set_num_threads(threads)
    return rows, tokens


def search_rows(chunks: int, batch: int, repeats: int, hnsw_too: bool) -> list[tuple[str, float]]:
    import faiss
    import numpy as np

    from vectorstores.faiss_index import FaissIndex

    faiss.omp_set_num_threads(1)  # as the server searches
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((chunks, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((max(batch, 64), DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = np.arange(chunks, dtype=np.int64)
    rows = []
    flat = FaissIndex(DIM, "flat")
    flat.add(ids, vectors)

    def q(i: int, n: int = 1) -> Any:
        start = (i * n) % (len(queries) - n + 1)
        return queries[start : start + n]

    rows.append(("flat, 1 query", median_ms(lambda i: flat.search(q(i), 10), repeats)))
    rows.append(
        (
            f"flat, {batch} queries one by one",
            median_ms(lambda i: [flat.search(row[None], 10) for row in q(i, batch)], repeats),
        )
    )
    rows.append(
        (
            f"flat, {batch} queries in one search_many",
            median_ms(lambda i: flat.search_many(q(i, batch), [10] * batch), repeats),
        )
    )
    log(f"flat: {rows}")
    if not hnsw_too:
        return rows
    hnsw = FaissIndex(DIM, "hnsw")
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    hnsw.add(ids, vectors)
    log(f"hnsw built in {time.perf_counter() - started:.0f} s")
    faiss.omp_set_num_threads(1)
    hnsw_ms = median_ms(lambda i: hnsw.search(q(i), 10), repeats)
    rows.append(("hnsw (M 32, efSearch 64), 1 query", hnsw_ms))
    return rows


def render(
    args: argparse.Namespace,
    emb: list[tuple[str, float, float, float]],
    search: list[tuple[str, float]],
    tokens: float,
) -> str:
    lines = [
        "## Where a search's time goes (in-process)",
        "",
        f"Command: `{' '.join(['bench/bench_query_path.py', *args.argv])}`",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
        f"medians of {args.repeats} calls; threads as the server runs them: a torch query on one "
        "thread, the ONNX query session on one thread per CPU, not spinning.",
        "",
        f"### Query embedding (the 40 dev questions, {tokens:.1f} tokens on average; "
        f"{args.batch} at once = {args.batch} concurrent calls: one coalesced batch on torch, "
        "side by side on ONNX)",
        "",
        f"| backend | 1 query (ms) | {args.batch} at once (ms) | wall per query (ms) | "
        f"CPU per query, {args.batch} at once (ms) | 1 query vs float32 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base = emb[0][1]
    for backend, one, many, cpu in emb:
        lines.append(
            f"| {backend} | {one:.1f} | {many:.1f} | {many / args.batch:.1f} | {cpu:.1f} | "
            f"{base / one:.2f}x |"
        )
    lines += [
        "",
        f"### Vector search, top 10 of {args.chunks} random unit vectors",
        "",
        "| search | ms | per query (ms) |",
        "|---|---:|---:|",
    ]
    for name, ms in search:
        n = args.batch if str(args.batch) + " queries" in name else 1
        lines.append(f"| {name} | {ms:.1f} | {ms / n:.2f} |")
    seq = next(ms for name, ms in search if "one by one" in name)
    batched = next(ms for name, ms in search if "search_many" in name)
    one_query = base + search[0][1]
    lines += [
        "",
        f"- {args.batch} concurrent flat searches coalesced into one call: {seq / batched:.2f}x "
        "faster than one by one.",
        f"- one query in-process (float32 embedding on torch + flat search): {one_query:.1f} ms, "
        f"of which the embedding {100 * base / one_query:.0f} %.",
    ]
    onnx = next((one for name, one, _, _ in emb if "queries onnx-float32" in name), None)
    if onnx is not None:
        total = onnx + search[0][1]
        lines.append(
            f"- the same with the default query backend (float32 documents, queries on the ONNX "
            f"float32 export): {total:.1f} ms, of which the embedding {100 * onnx / total:.0f} %."
        )
    rows = {name: (one, many, cpu) for name, one, many, cpu in emb}
    now = rows.get("float32, queries onnx-float32")
    before = rows.get("float32, queries onnx-float32, 1 thread (before)")
    if now and before:
        lines.append(
            f"- the ONNX query session on {os.cpu_count()} non-spinning threads vs one thread: "
            f"1 query {before[0] / now[0]:.2f}x faster, {args.batch} at once "
            f"{before[1] / now[1]:.2f}x."
        )
    if now:
        cores = os.cpu_count() or 1
        lines.append(
            f"- the default query backend costs {now[2]:.1f} ms of CPU per query under load: "
            f"{cores} cores embed at most {cores * 1000 / now[2]:.0f} queries/s, so "
            f"{args.batch} concurrent searches cannot average under "
            f"{args.batch * now[2] / cores:.1f} ms each before any vector search (Little's law)."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--hnsw", action="store_true", help="also an HNSW index (minutes to build)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/query_path.md"))
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    from bench.corpus import load_questions

    queries = [q["question"] for q in load_questions()]
    emb, tokens = embedding_rows(queries, args.batch, args.repeats)
    search = search_rows(args.chunks, args.batch, args.repeats, args.hnsw)
    report = render(args, emb, search, tokens)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n", encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
