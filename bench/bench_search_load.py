"""Search under load: concurrent clients against a real ``ragserver serve`` on loopback.

Usage::

    .venv/bin/python bench/bench_search_load.py [--chunks 100000] [--clients 8]
        [--requests 2000] [--duration 90] [--out bench/results/search_load.md]

A fresh data dir gets a FAISS collection (flat index, the default) of ``--chunks`` random unit
vectors with short texts, written straight into the store in documents of 100 chunks; then
``ragserver serve`` starts on it (a free port, ``RAG_DATA_DIR`` pointing there) and a bounded
asyncio loop of ``httpx`` clients posts real questions (the 40 dev questions, in turn) to
``POST /v1/collections/bench/search`` (top 10): the server embeds each query and searches.
One client alone runs first (the baseline latency), then ``--clients`` at once; each run stops
after ``--requests`` requests or ``--duration`` seconds, whichever comes first, after a
warm-up. Reported: p50/p99 latency, requests per second, the server's RSS at rest (VmRSS
after the load) and peak (VmHWM).
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

    from vectorstores.base import Chunk, DocumentRecord
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


def start_server(data_dir: Path, port: int, index: str, log_file: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
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


async def wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}")
            try:
                if (await client.get("/readyz")).status_code == 200:  # 503 while loading
                    return
            except httpx.HTTPError:
                pass
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
) -> dict[str, Any]:
    """Run ``clients`` concurrent request loops; return latencies (ms) and throughput."""
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
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    ordered = sorted(latencies)

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
    }


def render(result: dict[str, Any], command: str) -> str:
    rows = result["runs"]
    lines = [
        "## Search under load",
        "",
        f"Command: `{command}`",
        "",
        f"{result['chunks']} chunks (FAISS {result['index']}), {result['mode']} search, real "
        "questions embedded by the server "
        f"({result['backend']}), top 10, loopback HTTP; {os.cpu_count()} cores, load average "
        f"{result['loadavg']:.1f}.",
        "",
        "| clients | requests | errors | p50 (ms) | p90 (ms) | p99 (ms) | requests/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in rows:
        lines.append(
            f"| {run['clients']} | {run['requests']} | {run['errors']} | {run['p50_ms']:.1f} | "
            f"{run['p90_ms']:.1f} | {run['p99_ms']:.1f} | {run['rps']:.1f} |"
        )
    base, top = rows[0], rows[-1]
    lines += [
        "",
        f"- {top['clients']} clients vs 1: p50 {top['p50_ms'] / base['p50_ms']:.2f}x, "
        f"requests/s {top['rps'] / base['rps']:.2f}x (targets at 100k chunks: p50 <= 15 ms, "
        "p99 <= 50 ms)",
        f"- server RSS: {result['rss_ready_mb']:.0f} MB ready, {result['rss_rest_mb']:.0f} MB at "
        f"rest after the load, peak (VmHWM) {result['rss_peak_mb']:.0f} MB",
        f"- building the store: {result['build_s']:.1f} s; server start to ready: "
        f"{result['startup_s']:.1f} s",
        "",
    ]
    return "\n".join(lines)


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
    parser.add_argument("--out", type=Path, default=Path("bench/results/search_load.md"))
    args = parser.parse_args(argv)

    from bench.corpus import load_questions

    queries = [q["question"] for q in load_questions()]
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        data_dir = Path(tmp) / "data"
        log(f"writing {args.chunks} chunks")
        build_s = build_store(data_dir, args.chunks, args.index)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(data_dir, port, args.index, Path(tmp) / "server.log")
        try:
            started = time.perf_counter()
            asyncio.run(wait_ready(base, server, args.startup_timeout))
            startup_s = time.perf_counter() - started
            ready = proc_status(server.pid)
            log(f"server ready in {startup_s:.1f} s; RSS {ready['VmRSS']:.0f} MB")
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
                    )
                )
                log(json.dumps(run))
                runs.append(run)
            time.sleep(1.0)
            rest = proc_status(server.pid)
        except BaseException:
            sys.stderr.write((Path(tmp) / "server.log").read_text(errors="replace")[-4000:])
            raise
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    from ingest.backends import resolve_backend

    result = {
        "chunks": args.chunks,
        "index": args.index,
        "mode": args.mode,
        "backend": resolve_backend("auto"),
        "loadavg": os.getloadavg()[0],
        "runs": runs,
        "build_s": build_s,
        "startup_s": startup_s,
        "rss_ready_mb": ready["VmRSS"],
        "rss_rest_mb": rest["VmRSS"],
        "rss_peak_mb": rest["VmHWM"],
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
