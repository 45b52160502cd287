"""Nothing to do costs nothing: ``ragserver ingest`` over an unchanged folder, as a whole process.

Usage::

    .venv/bin/python bench/bench_unchanged_ingest.py [--repeat 3]
        [--out bench/results/unchanged_ingest.md]

The corpus is the Python 3.11 docs dev set (``/work/shared/eval/README.md``: every page
directly under ``library/``, ``tutorial/``, ``reference/``, ``howto/`` and ``faq/`` except
their ``index.html``), copied into a temporary folder. A fresh data directory (default
settings: FAISS, the bundled MiniLM) is filled by one ``ragserver ingest`` (timed, for
scale); then the same command runs ``--repeat`` more times over the unchanged folder, each a
new process timed from start to exit (interpreter start, imports, the store opened, every
file hashed and compared, the summary printed). Before this change the command loaded torch
and the embedding model first (10.4 s per run on the issue's machine, 0.2 s of it the work).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = Path("/usr/share/doc/python3.11/html")
FOLDERS = ("library", "tutorial", "reference", "howto", "faq")


def copy_corpus(target: Path) -> int:
    """Copy the dev set's pages into ``target`` (keeping their folders); return the count."""
    count = 0
    for folder in FOLDERS:
        (target / folder).mkdir(parents=True)
        for page in sorted((DOCS / folder).glob("*.html")):
            if page.name != "index.html":
                shutil.copyfile(page, target / folder / page.name)
                count += 1
    return count


def run_ingest(corpus: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run ``ragserver ingest`` as its own process; return its wall time and its summary."""
    command = [sys.executable, "-m", "app.cli", "ingest", str(corpus), "--collection", "docs"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout.strip()


def main() -> None:
    """Fill a store once, then time the unchanged re-ingests; write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench/results/unchanged_ingest.md"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        pages = copy_corpus(corpus)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "RAG_DATA_DIR": str(Path(tmp) / "data"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TQDM_DISABLE": "1",
        }
        first, first_summary = run_ingest(corpus, env)
        print(f"first ingest of {pages} pages: {first:.1f} s", flush=True)
        runs: list[float] = []
        summary = ""
        for _ in range(args.repeat):
            seconds, summary = run_ingest(corpus, env)
            runs.append(seconds)
            print(f"unchanged re-ingest: {seconds:.2f} s", flush=True)
    lines = [
        "# `ragserver ingest` over an unchanged folder, as a whole process",
        "",
        f"Command: `.venv/bin/python bench/bench_unchanged_ingest.py --repeat {args.repeat}`",
        "",
        f"Corpus: the {pages} pages of the Python 3.11 docs dev set; default settings (FAISS, "
        "bundled MiniLM). Wall time of each process, start to exit.",
        "",
        "| run | seconds |",
        "|-----|--------:|",
        f"| first ingest (embeds everything, for scale) | {first:.1f} |",
    ]
    lines += [f"| unchanged re-ingest {i} | {s:.2f} |" for i, s in enumerate(runs, 1)]
    lines += [
        "",
        f"Best unchanged run: {min(runs):.2f} s (target: under 3 s; 10.4 s before, when the "
        "model was loaded first).",
        "",
        "First run's summary:",
        "",
        "```",
        first_summary,
        "```",
        "",
        "Unchanged run's summary:",
        "",
        "```",
        summary,
        "```",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
