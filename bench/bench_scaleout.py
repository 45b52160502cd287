"""Scale-out benchmark: pgvector HNSW against FAISS flat and HNSW, then 1 vs 2 pgvector replicas.

Usage::

    .venv/bin/python bench/bench_scaleout.py [--chunks 100000] [--queries 200]
        [--replica-seconds 30] [--out bench/results/scaleout.md]

One run, one data set (``bench_vectorstores.make_data``: 384-d clustered unit vectors,
documents of 10 chunks), so every ratio compares figures taken minutes apart on the same
machine:

* **Stores, in process.** For ``faiss-flat`` (the baseline: exact), ``faiss-hnsw`` (m=32,
  ef_search=64) and ``pgvector`` (HNSW m=16, ef_construction=64, ef_search=64; PostgreSQL 16
  from the ``pgserver`` wheel on a unix socket, on the same cores):
  - ingestion: a bulk load (one ``upsert`` of all chunks: pgvector's bulk path builds the
    HNSW index once) and incremental writes (100 documents of 10 chunks through
    ``replace_document`` into the loaded collection: pgvector inserts into the HNSW graph row
    by row, as uploads do), in chunks/s;
  - search at top_k=10 with 1 client, then 8 threads at once: p50/p99 latency, requests/s and
    CPU per request (this process, plus PostgreSQL's processes for pgvector);
  - recall@10 against exact search (numpy).
* **Replicas.** The loaded pgvector collection served by one, then two ``ragserver serve``
  processes (MiniLM embeds each query; no generator loaded; BM25 not used), 8 concurrent
  clients spread round robin over the replicas, dense search for ``--replica-seconds``:
  requests/s, p50/p99, and CPU per request of the servers and of PostgreSQL.

The CPU model, core count and load average (other work on the machine) go in the report.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

from bench.bench_search_load import free_port, log, wait_ready  # noqa: E402
from bench.bench_vectorstores import DIM, PER_DOC, chunks_for, make_data  # noqa: E402
from core.types import DocumentRecord  # noqa: E402
from vectorstores.base import VectorStore  # noqa: E402
from vectorstores.registry import create_client  # noqa: E402

TOP_K = 10
MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # the servers' embedder: the collection's model
STORES: dict[str, tuple[str, dict[str, Any]]] = {
    "faiss-flat": ("faiss", {"index": "flat"}),
    "faiss-hnsw": ("faiss", {"index": "hnsw", "hnsw_m": 32, "hnsw_ef_search": 64}),
    "pgvector": ("pgvector", {"hnsw_m": 16, "hnsw_ef_construction": 64, "hnsw_ef_search": 64}),
}


# -- CPU accounting ---------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def process_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds of a process (its threads; with ``children``, its waited-for children)."""
    fields = _stat(pid)
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and its children, living and exited (PostgreSQL's backends)."""
    total = process_cpu(root, children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = _stat(int(entry.name))
                if int(fields[1]) == root:
                    total += process_cpu(int(entry.name))
            except (OSError, IndexError):
                continue  # exited meanwhile
    return total


class CpuMeter:
    """CPU seconds spent by this process and by given process trees, from ``start``."""

    def __init__(self, trees: list[int]) -> None:
        self.trees = trees
        self._start = 0.0

    def _now(self) -> float:
        times = os.times()
        return times.user + times.system + sum(tree_cpu(pid) for pid in self.trees)

    def start(self) -> None:
        self._start = self._now()

    def seconds(self) -> float:
        return self._now() - self._start


# -- stores -----------------------------------------------------------------------------------


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples), q))


def search_load(
    store: VectorStore, queries: np.ndarray, clients: int, meter: CpuMeter
) -> dict[str, float]:
    """Each query once, from ``clients`` threads at once: latency, throughput, CPU."""
    latencies: list[float] = []
    lock = threading.Lock()

    def one(q: np.ndarray) -> None:
        started = time.perf_counter()
        store.search(q, top_k=TOP_K)
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            latencies.append(elapsed)

    meter.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, queries))
    wall = time.perf_counter() - started
    return {
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "rps": len(latencies) / wall,
        "cpu_ms": meter.seconds() / len(latencies) * 1000,
    }


def incremental(store: VectorStore, vectors: np.ndarray, start: int) -> float:
    """100 documents of 10 chunks through ``replace_document``; return chunks/s."""
    n = 100 * PER_DOC
    chunks = chunks_for(start, start + n)
    began = time.perf_counter()
    for d in range(100):
        part = chunks[d * PER_DOC : (d + 1) * PER_DOC]
        doc = part[0].document_id
        now = time.time()
        record = DocumentRecord(doc, f"{doc}.txt", f"h{doc}", PER_DOC, {}, now, now)
        store.replace_document(record, part, vectors[d * PER_DOC : (d + 1) * PER_DOC])
    return n / (time.perf_counter() - began)


def bench_store(
    label: str,
    vectors: np.ndarray,
    queries: np.ndarray,
    exact: list[set[str]],
    pg: dict[str, Any],
) -> dict[str, Any]:
    backend, options = STORES[label]
    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-{label}-"))
    if backend == "pgvector":
        options = {**options, "url": pg["url"], "db_schema": "ragserver"}
    client = create_client(backend, data_dir, options)
    meter = CpuMeter([pg["postmaster"]] if backend == "pgvector" else [])
    try:
        store = client.create_collection("bench", MODEL, DIM)
        n = len(vectors)
        began = time.perf_counter()
        store.upsert(chunks_for(0, n), vectors)
        store.persist()
        row: dict[str, Any] = {"backend": label, "chunks": n}
        row["bulk_cps"] = n / (time.perf_counter() - began)
        log(f"{label}: bulk load {row['bulk_cps']:.0f} chunks/s")
        extra = make_data(100 * PER_DOC, 1, seed=7)[0]
        row["incr_cps"] = incremental(store, extra, n)
        for d in range(100):  # back to the n chunks the recall is measured on
            store.delete_document(f"doc{(n // PER_DOC) + d:06d}")
        store.search(queries[0], top_k=TOP_K)  # warm up
        row["c1"] = search_load(store, queries, 1, meter)
        row["c8"] = search_load(store, np.concatenate([queries] * 4), 8, meter)
        got = [{h.chunk.id for h in store.search(q, top_k=TOP_K)} for q in queries]
        row["recall"] = statistics.mean(len(g & w) / TOP_K for g, w in zip(got, exact, strict=True))
        log(f"{label}: {row}")
        return row
    finally:
        if backend != "pgvector":
            client.delete_collection("bench")
        client.close()  # the pgvector collection stays for the replicas
        shutil.rmtree(data_dir, ignore_errors=True)


def exact_top(vectors: np.ndarray, queries: np.ndarray) -> list[set[str]]:
    scores = queries @ vectors.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]
    return [{chunks_for(int(i), int(i) + 1)[0].id for i in row} for row in top]


# -- replicas ---------------------------------------------------------------------------------


def start_replica(tmp: Path, name: str, url: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(tmp / name),
        "RAG_VECTORSTORE__BACKEND": "pgvector",
        "RAG_VECTORSTORE__PGVECTOR__URL": url,
        "RAG_EMBEDDING__QUERY_BACKEND": "same",
        "RAG_LLM__LOAD_AT_STARTUP": "false",
        "RAG_SERVER__HOST": "127.0.0.1",
        "RAG_SERVER__PORT": str(port),
        "RAG_SERVER__LOG_LEVEL": "warning",
    }
    log_file = tmp / f"{name}.log"
    command = [str(Path(sys.executable).with_name("ragserver")), "serve"]
    with log_file.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    return proc, f"http://127.0.0.1:{port}", log_file


async def replica_load(
    bases: list[str], queries: list[str], clients: int, seconds: float
) -> dict[str, Any]:
    """``clients`` loops for ``seconds``, request i to replica i mod len(bases)."""
    import httpx

    latencies: list[float] = []
    errors = 0
    issued = 0
    async with httpx.AsyncClient(timeout=60) as http:

        async def post(i: int) -> httpx.Response:
            body = {"query": queries[i % len(queries)], "top_k": TOP_K, "mode": "dense"}
            return await http.post(
                f"{bases[i % len(bases)]}/v1/collections/bench/search", json=body
            )

        for i in range(10 * len(bases)):  # warm up every replica
            (await post(i)).raise_for_status()
        stop_at = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal errors, issued
            while time.monotonic() < stop_at:
                i = issued
                issued += 1
                began = time.perf_counter()
                response = await post(i)
                if response.status_code == 200:
                    latencies.append((time.perf_counter() - began) * 1000)
                else:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - began
    return {"requests": len(latencies), "errors": errors, "wall": wall, "latencies": latencies}


def bench_replicas(
    count: int, pg: dict[str, Any], queries: list[str], seconds: float, tmp: Path
) -> dict[str, Any]:
    replicas = [start_replica(tmp, f"replica{count}-{i}", pg["url"]) for i in range(count)]
    try:
        for proc, base, log_file in replicas:
            asyncio.run(wait_ready(base, proc, 600, "same", log_file))
        bases = [base for _, base, _ in replicas]
        # Settle: each replica builds its keyword index in the background after start-up.
        asyncio.run(replica_load(bases, queries, 8, 15))
        meter = CpuMeter([pg["postmaster"]])
        before = sum(process_cpu(proc.pid) for proc, _, _ in replicas)
        meter.start()
        run = asyncio.run(replica_load(bases, queries, 8, seconds))
        pg_cpu = meter.seconds()
        servers_cpu = sum(process_cpu(proc.pid) for proc, _, _ in replicas) - before
    finally:
        for proc, _, _ in replicas:
            proc.terminate()
        for proc, _, _ in replicas:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    done = max(1, run["requests"])
    row = {
        "replicas": count,
        "rps": run["requests"] / run["wall"],
        "p50": pct(run["latencies"], 50),
        "p99": pct(run["latencies"], 99),
        "errors": run["errors"],
        "server_cpu_ms": servers_cpu / done * 1000,
        "pg_cpu_ms": pg_cpu / done * 1000,  # includes this load generator's own CPU
    }
    log(f"replicas: {row}")
    return row


# -- report -----------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name, with the vector extensions that matter here."""
    model, flags = platform.processor() or "unknown CPU", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
        elif line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    wanted = {
        "avx2": "AVX2",
        "avx512f": "AVX-512",
        "avx512_bf16": "AVX-512 BF16",
        "amx_bf16": "AMX",
    }
    found = [name for flag, name in wanted.items() if flag in flags]
    return f"{model} ({', '.join(found) or 'no AVX2'})"


def render(result: dict[str, Any], command: str) -> str:
    stores, replicas = result["stores"], result["replicas"]
    base = stores[0]
    lines = [
        "# Scale-out benchmark: pgvector against FAISS, one and two replicas",
        "",
        f"`{command}` on {result['cpu']} ({os.cpu_count()} cores, {platform.machine()}), "
        f"Python {platform.python_version()}; {result['pg']}. Load average "
        f"{result['load_before']:.1f} before and {result['load_after']:.1f} after the run "
        "(other agents' work on the same cores): read the ratios, taken in this one run, "
        "rather than the absolute figures.",
        "",
        f"{result['chunks']:,} chunks ({DIM}-d clustered unit vectors, documents of {PER_DOC}), "
        f"{result['queries']} queries (stored vectors plus noise), top_k={TOP_K}. Ratios are "
        f"against `{base['backend']}` (×: this backend's figure over the baseline's).",
        "",
        "| backend | bulk load (chunks/s) | row by row (chunks/s) | p50 1 client (ms) "
        "| p99 1 client (ms) | p50 8 clients (ms) | p99 8 clients (ms) | req/s 8 clients "
        "| CPU/request (ms) | recall@10 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in stores:

        def ratio(value: float, ref: float, first: bool = r is base) -> str:
            return "" if first else f" ({value / ref:.2f}×)"

        c1, c8, b1, b8 = r["c1"], r["c8"], base["c1"], base["c8"]
        lines.append(
            f"| {r['backend']} | {r['bulk_cps']:,.0f}{ratio(r['bulk_cps'], base['bulk_cps'])} "
            f"| {r['incr_cps']:,.0f}{ratio(r['incr_cps'], base['incr_cps'])} "
            f"| {c1['p50']:.2f}{ratio(c1['p50'], b1['p50'])} | {c1['p99']:.2f} "
            f"| {c8['p50']:.2f}{ratio(c8['p50'], b8['p50'])} | {c8['p99']:.2f} "
            f"| {c8['rps']:,.0f}{ratio(c8['rps'], b8['rps'])} "
            f"| {c8['cpu_ms']:.2f}{ratio(c8['cpu_ms'], b8['cpu_ms'])} | {r['recall']:.3f} |"
        )
    one = replicas[0]
    lines += [
        "",
        f"Replicas on the pgvector collection above: `ragserver serve` processes (MiniLM query "
        f"embedding, dense search), 8 clients round robin over them for "
        f"{result['replica_seconds']:.0f} s each.",
        "",
        "| replicas | requests/s | p50 (ms) | p99 (ms) | errors | server CPU/request (ms) "
        "| PostgreSQL + client CPU/request (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in replicas:
        gain = "" if r is one else f" ({r['rps'] / one['rps']:.2f}×)"
        lines.append(
            f"| {r['replicas']} | {r['rps']:.1f}{gain} | {r['p50']:.1f} | {r['p99']:.1f} "
            f"| {r['errors']} | {r['server_cpu_ms']:.1f} | {r['pg_cpu_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def start_postgres(tmp: Path) -> dict[str, Any]:
    import pgserver
    import psycopg

    folder = tmp / "pg"
    folder.mkdir()
    folder.chmod(0o755)  # pgserver may run the server as a user of its own
    tmp.chmod(0o755)
    server = pgserver.get_server(folder / "data", cleanup_mode="delete")
    url = str(server.get_uri())
    postmaster = int((folder / "data" / "postmaster.pid").read_text().split()[0])
    with psycopg.connect(url) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        row = conn.execute(
            "SELECT current_setting('server_version'), "
            "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"
        ).fetchone()
    assert row is not None
    described = f"PostgreSQL {row[0]} + pgvector {row[1]} (pgserver, unix socket, same cores)"
    return {"server": server, "url": url, "postmaster": postmaster, "describe": described}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--replica-seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/scaleout.md"))
    args = parser.parse_args(argv)
    from bench.corpus import load_questions

    questions = [q["question"] for q in load_questions()]
    load_before = os.getloadavg()[0]
    vectors, queries = make_data(args.chunks, args.queries)
    exact = exact_top(vectors, queries)
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as name:
        tmp = Path(name)
        pg = start_postgres(tmp)
        try:
            stores = [bench_store(label, vectors, queries, exact, pg) for label in STORES]
            replicas = [bench_replicas(n, pg, questions, args.replica_seconds, tmp) for n in (1, 2)]
        finally:
            pg["server"].cleanup()
    result = {
        "cpu": cpu_model(),
        "pg": pg["describe"],
        "chunks": args.chunks,
        "queries": args.queries,
        "replica_seconds": args.replica_seconds,
        "stores": stores,
        "replicas": replicas,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }
    command = " ".join(["bench/bench_scaleout.py", *(argv if argv is not None else sys.argv[1:])])
    report = render(result, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
