"""Benchmark the vector store backends: search latency, HNSW recall, delete cost.

Usage::

    .venv/bin/python bench/bench_vectorstores.py [--sizes 10000 100000]
        [--backends faiss-flat faiss-hnsw memory chroma pgvector] [--queries 200]
        [--pg-url postgresql://...] [--out bench/results/vectorstores.md]

``pgvector`` runs against ``--pg-url``, or else a PostgreSQL 16 + pgvector started from the
``pgserver`` wheel for the run (local unix socket); each run writes a schema of its own and
drops its collection afterwards (the empty schema ``bench_<pid>`` stays).

Data: 384-dimensional unit vectors in documents of 10 chunks, each chunk with a ``group``
(0-99) metadata value. Like embeddings of related texts, vectors are clustered (one centre per
50 vectors, plus Gaussian noise: cosine about 0.86 to their centre); uniformly random vectors
are the worst case for HNSW (recall@10 around 0.2-0.4 at 100k) and not what a RAG index holds.
Queries are stored vectors plus noise (normalised). Reported per backend and size: insert time
(``--batch`` chunks per ``upsert``, 5,000 by default; pgvector's bulk path builds the HNSW
index after the copy when a batch is at least as large as the table, and ``pgvector-rowwise``
turns that off), search p50/p99 at top_k=10 without and with a filter matching 1% of the
chunks, HNSW recall@10 against exact flat search, and the time to delete one document of 10
chunks (median of 5) at each size.
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from core.types import Chunk  # noqa: E402
from vectorstores.base import VectorStore, VectorStoreClient  # noqa: E402
from vectorstores.registry import create_client  # noqa: E402

DIM = 384
PER_DOC = 10
BATCH = 5000
TOP_K = 10

BACKENDS: dict[str, tuple[str, dict[str, object]]] = {
    "faiss-flat": ("faiss", {"index": "flat"}),
    "faiss-hnsw": ("faiss", {"index": "hnsw", "hnsw_m": 32, "hnsw_ef_search": 64}),
    "memory": ("memory", {}),
    "chroma": ("chroma", {}),
    "pgvector": ("pgvector", {"hnsw_m": 16, "hnsw_ef_construction": 64, "hnsw_ef_search": 64}),
    # pgvector without the bulk path: every row inserted into the HNSW graph as it is written.
    "pgvector-rowwise": (
        "pgvector",
        {"hnsw_m": 16, "hnsw_ef_construction": 64, "hnsw_ef_search": 64, "bulk_min_rows": 0},
    ),
}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_data(n: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 50), DIM), dtype=np.float32)
    noise = 0.6 * rng.standard_normal((n, DIM), dtype=np.float32)
    vectors = unit(centres[rng.integers(0, len(centres), n)] + noise)
    picks = rng.integers(0, n, n_queries)
    queries = unit(vectors[picks] + 0.08 * rng.standard_normal((n_queries, DIM), dtype=np.float32))
    return vectors, queries


def chunks_for(start: int, stop: int) -> list[Chunk]:
    return [
        Chunk(
            f"doc{i // PER_DOC:06d}:{i % PER_DOC:05d}",
            f"doc{i // PER_DOC:06d}",
            f"chunk {i}",
            {"position": i % PER_DOC, "group": (i // PER_DOC) % 100},
        )
        for i in range(start, stop)
    ]


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples), q))


def bench_one(
    label: str,
    vectors: np.ndarray,
    queries: np.ndarray,
    exact: list[list[str]] | None,
    batch: int = BATCH,
) -> tuple[dict[str, object], list[list[str]]]:
    backend, options = BACKENDS[label]
    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-{label}-"))
    client: VectorStoreClient = create_client(backend, data_dir, options)
    try:
        store: VectorStore = client.create_collection("bench", "random-384", DIM)
        n = len(vectors)

        def insert() -> None:
            for start in range(0, n, batch):
                stop = min(start + batch, n)
                store.upsert(chunks_for(start, stop), vectors[start:stop])

        insert_s = timed(insert)
        store.search(queries[0], top_k=TOP_K)  # warm up
        latencies, results = [], []
        for q in queries:
            started = time.perf_counter()
            hits = store.search(q, top_k=TOP_K)
            latencies.append((time.perf_counter() - started) * 1000)
            results.append([h.chunk.id for h in hits])
        filtered = [
            timed(lambda q=q: store.search(q, top_k=TOP_K, filter={"group": 7})) * 1000
            for q in queries[: max(20, len(queries) // 4)]
        ]
        recall = None
        if exact is not None:
            recall = statistics.mean(
                len(set(got) & set(want)) / len(want)
                for got, want in zip(results, exact, strict=True)
            )
        deletes = [
            timed(lambda d=d: store.delete_document(f"doc{d:06d}")) * 1000
            for d in range(1, n // PER_DOC, max(1, n // PER_DOC // 5))
        ][:5]
        row = {
            "backend": label,
            "chunks": n,
            "insert_s": insert_s,
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "filtered_p50": percentile(filtered, 50),
            "recall": recall,
            "delete_ms": statistics.median(deletes),
        }
        return row, results
    finally:
        client.delete_collection("bench")
        client.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def start_pgserver() -> str:
    """Start a throw-away PostgreSQL 16 + pgvector (stopped and deleted at exit)."""
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    folder.chmod(0o755)  # the server may run as pgserver's own user
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # after pgserver stops it (LIFO)
    server = pgserver.get_server(folder / "pg", cleanup_mode="delete")
    return str(server.get_uri())


def pg_versions(args: argparse.Namespace) -> list[str]:
    if not any(b.startswith("pgvector") for b in args.backends):
        return []
    import psycopg

    with psycopg.connect(str(BACKENDS["pgvector"][1]["url"])) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'), "
            "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"
        ).fetchone()
    assert row is not None
    pgvector = BACKENDS["pgvector"][1]
    where = "--pg-url" if args.pg_url else "pgserver on a unix socket, sharing the CPUs"
    return [
        f"pgvector: PostgreSQL {row[0]}, pgvector {row[1]} ({where}), "
        f"HNSW m={pgvector['hnsw_m']}, ef_construction={pgvector['hnsw_ef_construction']}, "
        f"ef_search={pgvector['hnsw_ef_search']}.",
    ]


def markdown(rows: list[dict[str, object]], args: argparse.Namespace) -> str:
    import faiss

    try:
        import chromadb

        chroma_version = chromadb.__version__
    except ImportError:  # pragma: no cover
        chroma_version = "-"
    head = [
        "# Vector store benchmark",
        "",
        f"`{' '.join(sys.argv)}` on {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, faiss {faiss.__version__}, chromadb {chroma_version}.",
        *pg_versions(args),
        f"{DIM}-d clustered unit vectors, documents of {PER_DOC} chunks, {args.queries} queries "
        f"(stored vectors plus noise), top_k={TOP_K}; the filter matches 1% of the chunks.",
        "",
        "| backend | chunks | insert (s) | insert (chunks/s) | search p50 (ms) "
        "| search p99 (ms) | filtered p50 (ms) | recall@10 | delete 1 doc (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        recall = (
            "exact"
            if r["backend"] in ("faiss-flat", "memory")
            else (f"{r['recall']:.3f}" if r["recall"] is not None else "-")
        )
        head.append(
            f"| {r['backend']} | {r['chunks']:,} | {r['insert_s']:.1f} "
            f"| {r['chunks'] / r['insert_s']:,.0f} | {r['p50']:.2f} "
            f"| {r['p99']:.2f} | {r['filtered_p50']:.2f} | {recall} | {r['delete_ms']:.2f} |"
        )
    return "\n".join(head) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=BATCH, help="chunks per upsert call")
    parser.add_argument("--pg-url", default="", help="PostgreSQL for pgvector (else pgserver)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/vectorstores.md"))
    args = parser.parse_args()
    if any(b.startswith("pgvector") for b in args.backends):
        url = args.pg_url or start_pgserver()
        for label in ("pgvector", "pgvector-rowwise"):
            BACKENDS[label][1]["url"] = url
            BACKENDS[label][1]["db_schema"] = f"bench_{label.replace('-', '_')}_{os.getpid()}"
    rows: list[dict[str, object]] = []
    for size in args.sizes:
        vectors, queries = make_data(size, args.queries)
        exact = None
        order = ["faiss-flat"] + [b for b in args.backends if b != "faiss-flat"]
        for label in order:
            if label not in args.backends and label != "faiss-flat":
                continue
            row, results = bench_one(
                label, vectors, queries, None if label == "faiss-flat" else exact, args.batch
            )
            if label == "faiss-flat":
                exact = results
            if label in args.backends:
                rows.append(row)
                print(
                    f"{label:>10} {size:>7}: insert {row['insert_s']:.1f}s p50 {row['p50']:.2f}ms "
                    f"p99 {row['p99']:.2f}ms filtered {row['filtered_p50']:.2f}ms "
                    f"recall {row['recall']} delete {row['delete_ms']:.2f}ms",
                    flush=True,
                )
    text = markdown(rows, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
