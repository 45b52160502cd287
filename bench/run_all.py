"""Run every benchmark in ``bench/`` and gather their markdown into ``bench/results/REPORT.md``.

Usage (``make bench`` runs it with no arguments)::

    .venv/bin/python bench/run_all.py [--only ingest search_load] [--skip llm] [--quick]
        [--timeout 5400] [--out bench/results/REPORT.md]

Every ``bench/bench_*.py`` runs as a subprocess, one after another (they would skew each
other's timings if run together), with the arguments in ``ARGS`` (``QUICK_ARGS`` with
``--quick``: smaller sizes, for a smoke run). A script that takes ``--out`` writes its own
markdown there (``bench/results/<name>.md``); the others' standard output is taken as their
markdown. A script that fails or runs past ``--timeout`` is reported as such, with the tail of
its error output, and the rest still run; the exit status is non-zero if any failed.
``--collect`` runs nothing and gathers the markdown already in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"

ARGS: dict[str, list[str]] = {
    "vectorstores": ["--sizes", "10000", "100000"],
    "llm": ["--runs", "5"],
    "retrieval": [],
    "ingest": [],
    "search_load": ["--chunks", "100000", "--clients", "8", "--requests", "2000"],
    "answers": ["--end-to-end", "--out", "bench/results/answers_python40.md"],
    "answers_broad": ["--confirm", "--out", "bench/results/answers.md"],
    "small_prompt": ["--limit", "20"],
}
QUICK_ARGS: dict[str, list[str]] = {
    "vectorstores": ["--sizes", "10000", "--queries", "50"],
    "llm": ["--runs", "1", "--max-new-tokens", "16"],
    "retrieval": ["--pages", "40", "--chunk-sizes", "200"],
    "ingest": ["--pages", "40", "--backend-chunks", "64", "--rounds", "1"],
    "search_load": ["--chunks", "10000", "--requests", "200", "--duration", "30"],
    "scaleout": ["--chunks", "10000", "--queries", "50", "--replica-seconds", "10"],
}


def scripts() -> dict[str, Path]:
    """Every ``bench/bench_<name>.py``, by name, sorted."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(BENCH.glob("bench_*.py"))}


def takes_out(script: Path) -> bool:
    return '"--out"' in script.read_text(encoding="utf-8")


def run_one(name: str, script: Path, args: list[str], timeout: float) -> tuple[str, float, str]:
    """Run one benchmark; return (status, seconds, markdown or error text)."""
    command = [sys.executable, str(script), *args]
    out_file = RESULTS / f"{name}.md"
    if takes_out(script) and "--out" not in args:
        command += ["--out", str(out_file.relative_to(ROOT))]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    shown = " ".join(["python", str(script.relative_to(ROOT)), *command[2:]])
    print(f"== {shown}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-3000:]
        text = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        return "timed out", time.perf_counter() - started, f"`{shown}`\n\n```\n{text}\n```"
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        error = f"`{shown}` exited {done.returncode}\n\n```\n{done.stderr[-3000:]}\n```"
        return "failed", seconds, error
    if takes_out(script) and out_file.is_file():
        return "ok", seconds, out_file.read_text(encoding="utf-8")
    return "ok", seconds, f"Command: `{shown}`\n\n{done.stdout}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", nargs="+", help="run only these (names without bench_)")
    parser.add_argument("--skip", nargs="+", default=[], help="leave these out")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run")
    parser.add_argument("--timeout", type=float, default=5400.0, help="seconds per benchmark")
    parser.add_argument("--out", type=Path, default=RESULTS / "REPORT.md")
    parser.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: gather every bench/results/*.md already there into the report",
    )
    args = parser.parse_args(argv)
    found = scripts()
    unknown = set(args.only or []) | set(args.skip)
    unknown -= set(found)
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}; known: {sorted(found)}")
    chosen = [n for n in found if (not args.only or n in args.only) and n not in args.skip]
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = ["| benchmark | status | seconds |", "|---|---|---:|"]
    sections: list[str] = []
    failed = 0
    if args.collect:
        chosen = [p.stem for p in sorted(RESULTS.glob("*.md")) if p.name != args.out.name]
    for name in chosen:
        if args.collect:
            table.append(f"| {name} | collected | |")
            sections += [f"# {name}", "", (RESULTS / f"{name}.md").read_text().strip(), ""]
            continue
        arguments = (QUICK_ARGS if args.quick else ARGS).get(name, [])
        status, seconds, markdown = run_one(name, found[name], arguments, args.timeout)
        failed += status != "ok"
        table.append(f"| {name} | {status} | {seconds:.0f} |")
        sections += [f"# {name}", "", markdown.strip(), ""]
    header = [
        "# Benchmark report",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
        + ("; quick (smoke) sizes" if args.quick else ""),
        "",
        "Absolute numbers move with the machine's load; compare the ratios each benchmark "
        "measures within its own run.",
        "",
        *table,
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + sections) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
