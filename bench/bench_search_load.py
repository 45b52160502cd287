"""Search under load: concurrent clients against a real ``ragserver serve`` on loopback.

Usage::

    .venv/bin/python bench/bench_search_load.py [--chunks 100000] [--clients 8]
        [--requests 2000] [--duration 90] [--query-backends auto same]
        [--out bench/results/search_load.md]

A fresh data dir gets a FAISS collection (flat index, the default) of ``--chunks`` random unit
vectors with short texts, written straight into the store in documents of 100 chunks; then
``ragserver serve`` starts on it (a free port, ``RAG_DATA_DIR`` pointing there) and a bounded
asyncio loop of ``httpx`` clients posts real questions (the 40 dev questions, in turn) to
``POST /v1/collections/bench/search`` (top 10): the server embeds each query and searches.
One client alone runs first (the baseline latency), then ``--clients`` at once; each run stops
after ``--requests`` requests or ``--duration`` seconds, whichever comes first, after a
warm-up. Reported: p50/p99 latency, requests per second, the CPU time per request of the
server and of the load generator (which share the cores; with them, Little's law gives the
lowest mean latency the clients can see on this machine), the server's RSS at rest (VmRSS
after the load) and peak (VmHWM).

The server runs once per ``--query-backends`` entry (``RAG_EMBEDDING__QUERY_BACKEND``), on the
same store, one after the other: ``same`` (queries embedded like documents, torch) is the
baseline of the default ``auto`` (an ONNX float32 export for queries, made in the background:
the load starts once ``/readyz`` reports it in use; where ``auto`` keeps queries on the
documents' backend, as on a CPU with native bfloat16, or the export fails, at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLLECTION = "bench"
DIM = 384
PER_DOC = 100
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
WORDS = ["kite", "wind", "string", "spool", "tail", "colour", "knot", "ribbon", "sky", "river"]


def log(line: str) -> None:
    print(f"[bench_search_load {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def build_store(data_dir: Path, chunks: int, index: str, seed: int = 0) -> float:
    """Write ``chunks`` random unit vectors with short texts into a FAISS collection."""
    import numpy as np

    from core.types import Chunk, DocumentRecord
    from vectorstores.registry import create_client

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    client = create_client("faiss", data_dir, {"index": index})
    store = client.create_collection(COLLECTION, MODEL, DIM)
    for first in range(0, chunks, PER_DOC):
        doc = f"doc{first // PER_DOC:06d}"
        n = min(PER_DOC, chunks - first)
        vectors = rng.standard_normal((n, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        items = [
            Chunk(
                id=f"{doc}:{i:05d}",
                document_id=doc,
                text=" ".join(rng.choice(WORDS, size=12)),
                metadata={"source": f"{doc}.txt", "document_id": doc, "position": i},
            )
            for i in range(n)
        ]
        record = DocumentRecord(doc, f"{doc}.txt", f"h{first}", n, {}, time.time(), time.time())
        store.replace_document(record, items, vectors)
    store.persist()
    client.close()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far, all its threads together."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def start_server(
    data_dir: Path, port: int, index: str, query_backend: str, log_file: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RAG_EMBEDDING__QUERY_BACKEND": query_backend,
        "RAG_VECTORSTORE__BACKEND": "faiss",
        "RAG_VECTORSTORE__FAISS__INDEX": index,
        "RAG_LLM__LOAD_AT_STARTUP": "false",  # search only: no generator in memory
        "RAG_DATA_DIR": str(data_dir),
        "RAG_SERVER__HOST": "127.0.0.1",
        "RAG_SERVER__PORT": str(port),
        "RAG_SERVER__LOG_LEVEL": "warning",
    }
    command = [str(Path(sys.executable).with_name("ragserver")), "serve"]
    with log_file.open("wb") as handle:
        return subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)


def expects_query_export(query_backend: str) -> bool:
    """Whether a server with this query backend will move queries to an ONNX export.

    Resolved like the server does (``ingest.backends``), on the same CPU: ``auto`` keeps
    queries on the documents' backend where that is not float32 (a CPU with native bfloat16
    embeds in bfloat16), and then no ONNX session ever comes.
    """
    from ingest.backends import resolve_backend, resolve_query_backend

    return resolve_query_backend(query_backend, resolve_backend("auto")) != "same"


def query_backend_settled(embedding: dict[str, Any], expect_export: bool, log_file: Path) -> bool:
    """Queries run where they will stay: no export expected, it is in use, or it failed."""
    if not expect_export or embedding.get("query_backend", "").startswith("onnx"):
        return True
    # The server logs this warning (at the bench's log level) when the export fails.
    return log_file.is_file() and "queries stay on the" in log_file.read_text(errors="replace")


async def wait_ready(
    base: str,
    server: subprocess.Popen[bytes],
    timeout: float,
    query_backend: str,
    log_file: Path,
) -> dict[str, Any]:
    """Wait for ``/readyz`` and for the query backend to settle; return its embedding."""
    import httpx

    expect_export = expects_query_export(query_backend)
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}")
            try:
                response = await client.get("/readyz")  # 503 while loading
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 200:
                embedding: dict[str, Any] = response.json()["detail"].get("embedding", {})
                if query_backend_settled(embedding, expect_export, log_file):
                    return embedding
            await asyncio.sleep(0.5)
    raise TimeoutError(f"the server was not ready within {timeout:.0f} s")


async def load(
    base: str,
    queries: list[str],
    clients: int,
    requests: int,
    duration: float,
    warmup: int,
    mode: str,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """Run ``clients`` concurrent request loops; return latencies (ms) and throughput.

    With ``server_pid``, also the CPU time per request of the server and of this load
    generator (both on the same cores): what bounds the throughput of a busy machine.
    """
    import httpx

    url = f"/v1/collections/{COLLECTION}/search"
    latencies: list[float] = []
    errors = 0
    issued = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        for i in range(warmup):
            body = {"query": queries[i % len(queries)], "top_k": 10, "mode": mode}
            (await http.post(url, json=body)).raise_for_status()
        stop_at = time.monotonic() + duration

        async def worker() -> None:
            nonlocal errors, issued
            while issued < requests and time.monotonic() < stop_at:
                query = queries[issued % len(queries)]
                issued += 1
                started = time.perf_counter()
                body = {"query": query, "top_k": 10, "mode": mode}
                response = await http.post(url, json=body)
                elapsed = time.perf_counter() - started
                if response.status_code == 200 and len(response.json()["hits"]) == 10:
                    latencies.append(elapsed * 1000)
                else:
                    errors += 1

        started = time.perf_counter()
        server_cpu = cpu_seconds(server_pid) if server_pid else 0.0
        own_cpu = own_cpu_seconds()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
        own_cpu = own_cpu_seconds() - own_cpu
        server_cpu = cpu_seconds(server_pid) - server_cpu if server_pid else 0.0
    ordered = sorted(latencies)
    done = max(1, len(latencies) + errors)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "seconds": wall,
        "rps": len(latencies) / wall if wall > 0 else 0.0,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "mean_ms": statistics.fmean(ordered),
        "server_cpu_ms": server_cpu / done * 1000,
        "client_cpu_ms": own_cpu / done * 1000,
    }


def render(result: dict[str, Any], command: str) -> str:
    lines = [
        "## Search under load",
        "",
        f"Command: `{command}`",
        "",
        f"{result['chunks']} chunks (FAISS {result['index']}), {result['mode']} search, real "
        "questions embedded by the server, top 10, loopback HTTP; documents' embedding backend "
        f"{result['backend']}; {os.cpu_count()} cores, load average {result['loadavg']:.1f}.",
        "",
        "| query backend | clients | requests | errors | p50 (ms) | p90 (ms) | p99 (ms) "
        "| requests/s | server CPU per request (ms) | load generator CPU per request (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for server in result["servers"]:
        for run in server["runs"]:
            lines.append(
                f"| {server['query_backend']} ({server['setting']}) | {run['clients']} | "
                f"{run['requests']} | {run['errors']} | {run['p50_ms']:.1f} | "
                f"{run['p90_ms']:.1f} | {run['p99_ms']:.1f} | {run['rps']:.1f} | "
                f"{run['server_cpu_ms']:.1f} | {run['client_cpu_ms']:.1f} |"
            )
    lines.append("")
    servers = result["servers"]
    for server in servers:
        base, top = server["runs"][0], server["runs"][-1]
        lines.append(
            f"- {server['setting']}: {top['clients']} clients vs 1: p50 "
            f"{top['p50_ms'] / base['p50_ms']:.2f}x, requests/s {top['rps'] / base['rps']:.2f}x; "
            f"server RSS {server['rss_ready_mb']:.0f} MB ready, {server['rss_rest_mb']:.0f} MB "
            f"at rest after the load, peak (VmHWM) {server['rss_peak_mb']:.0f} MB; start to "
            f"ready {server['startup_s']:.1f} s"
            + (" (until the query export was in use)" if server["setting"] != "same" else "")
        )
    cores = os.cpu_count() or 1
    for server in servers:
        top = server["runs"][-1]
        cpu = top["server_cpu_ms"] + top["client_cpu_ms"]
        if cpu <= 0:  # no CPU figures (a load run without the server's pid)
            continue
        lines.append(
            f"- {server['setting']}, {top['clients']} clients: {cpu:.1f} ms of CPU per request "
            f"(server and load generator) on {cores} cores caps the throughput at "
            f"{cores * 1000 / cpu:.0f} requests/s, so a closed loop of {top['clients']} clients "
            f"cannot average under {top['clients'] * cpu / cores:.1f} ms per request "
            f"(Little's law; measured mean {top['mean_ms']:.1f} ms)"
        )
    if len(servers) > 1:
        first, last = servers[0], servers[-1]
        for i, run in enumerate(first["runs"]):
            other = last["runs"][i]
            lines.append(
                f"- {last['setting']} vs {first['setting']}, {run['clients']} client(s): p50 "
                f"{run['p50_ms'] / other['p50_ms']:.2f}x lower, p99 "
                f"{run['p99_ms'] / other['p99_ms']:.2f}x lower, requests/s "
                f"{other['rps'] / run['rps']:.2f}x"
            )
    lines += [
        "- targets at 100k chunks: p50 <= 15 ms, p99 <= 50 ms",
        f"- building the store: {result['build_s']:.1f} s",
        "",
    ]
    return "\n".join(lines)


def run_server(
    data_dir: Path, tmp: Path, setting: str, args: argparse.Namespace, queries: list[str]
) -> dict[str, Any]:
    """Serve the store with one query backend, run the loads, stop; return the figures."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_file = tmp / f"server-{setting}.log"
    server = start_server(data_dir, port, args.index, setting, log_file)
    try:
        started = time.perf_counter()
        embedding = asyncio.run(wait_ready(base, server, args.startup_timeout, setting, log_file))
        startup_s = time.perf_counter() - started
        ready = proc_status(server.pid)
        log(f"{setting}: ready in {startup_s:.1f} s ({embedding}); RSS {ready['VmRSS']:.0f} MB")
        runs = []
        for clients in sorted({1, args.clients}):
            run = asyncio.run(
                load(
                    base,
                    queries,
                    clients,
                    args.requests,
                    args.duration,
                    args.warmup,
                    args.mode,
                    server_pid=server.pid,
                )
            )
            log(json.dumps(run))
            runs.append(run)
        time.sleep(1.0)
        rest = proc_status(server.pid)
    except BaseException:
        sys.stderr.write(log_file.read_text(errors="replace")[-4000:])
        raise
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return {
        "setting": setting,
        "query_backend": embedding.get("query_backend", "?"),
        "runs": runs,
        "startup_s": startup_s,
        "rss_ready_mb": ready["VmRSS"],
        "rss_rest_mb": rest["VmRSS"],
        "rss_peak_mb": rest["VmHWM"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=90.0)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--index", choices=["flat", "hnsw"], default="flat")
    parser.add_argument("--mode", choices=["dense", "bm25", "hybrid"], default="dense")
    parser.add_argument(
        "--query-backends",
        nargs="+",
        choices=["auto", "same", "onnx-float32"],
        default=["same", "auto"],
        help="one server run per entry, the first being the baseline",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/search_load.md"))
    args = parser.parse_args(argv)

    from bench.corpus import load_questions

    queries = [q["question"] for q in load_questions()]
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        data_dir = Path(tmp) / "data"
        log(f"writing {args.chunks} chunks")
        build_s = build_store(data_dir, args.chunks, args.index)
        servers = [
            run_server(data_dir, Path(tmp), setting, args, queries)
            for setting in args.query_backends
        ]
    from ingest.backends import resolve_backend

    result = {
        "chunks": args.chunks,
        "index": args.index,
        "mode": args.mode,
        "backend": resolve_backend("auto"),
        "loadavg": os.getloadavg()[0],
        "servers": servers,
        "build_s": build_s,
    }
    command = " ".join(
        ["bench/bench_search_load.py", *(argv if argv is not None else sys.argv[1:])]
    )
    report = render(result, command.strip())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
