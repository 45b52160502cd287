"""Nothing to do costs nothing: ``ragserver ingest`` over an unchanged folder, as a whole process.

Usage::

    .venv/bin/python bench/bench_unchanged_ingest.py [--repeat 3] [--fill placeholder|real]
        [--out bench/results/unchanged_ingest.md]

The corpus is the Python 3.11 docs dev set (``/work/shared/eval/README.md``: every page
directly under ``library/``, ``tutorial/``, ``reference/``, ``howto/`` and ``faq/`` except
their ``index.html``), copied into a temporary folder, and a fresh data directory with
default settings (FAISS, the bundled MiniLM's name).

The store is filled first. ``--fill real`` runs ``ragserver ingest`` itself (minutes of
embedding on a small machine); ``--fill placeholder`` (the default) runs the same pipeline
in-process with a stand-in embedder that reports the bundled model's name and dimension and
returns constant unit vectors: the records (sources, content hashes, metadata) are exactly
what a real ingest stores, and they are all the unchanged test reads. Then ``ragserver
ingest`` runs ``--repeat`` times over the unchanged folder, each a new process timed from
start to exit (interpreter, imports, the store opened, every file hashed and compared, the
summary printed); the bench checks each summary says every file was unchanged. Before this
change the command loaded torch and the embedding model first (10.4 s per run on the issue's
machine, 0.2 s of it the work).
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
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


class PlaceholderEmbedder:
    """Reports the bundled model's name and dimension; every vector is the first unit vector."""

    def __init__(self, model_name: str, dimension: int = 384) -> None:
        self.model_name = model_name
        self.dimension = dimension
        self.max_seq_length = 256

    def embed(self, texts: Any) -> Any:
        import numpy as np

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        out[:, 0] = 1.0
        return out

    def embed_query(self, text: str) -> Any:
        return self.embed([text])[0]

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2


def fill_placeholder(corpus: Path, data_dir: Path) -> float:
    """Ingest the corpus with the real pipeline and a placeholder embedder; return seconds."""
    from app.services.container import build_collections, load_limits
    from app.settings import Settings
    from ingest.embedders import embedder_model_name
    from ingest.pipeline import IngestPipeline

    settings = Settings(data_dir=data_dir)
    embedder = PlaceholderEmbedder(embedder_model_name(settings.embedding.model))
    started = time.perf_counter()
    collections = build_collections(settings, embedder)
    try:
        store = collections.create("docs")
        pipeline = IngestPipeline(
            embedder,
            chunk_size=settings.ingest.chunk_size,
            chunk_overlap=settings.ingest.chunk_overlap,
            limits=load_limits(settings),
        )
        summary = pipeline.ingest_paths(store, [corpus], progress_bar=False)
        store.persist()
        assert not summary.failed, summary.failed
    finally:
        collections.close()
    return time.perf_counter() - started


def run_ingest(corpus: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``ragserver ingest`` as its own process; return its wall and CPU seconds, summary."""
    import resource

    command = [sys.executable, "-m", "app.cli", "ingest", str(corpus), "--collection", "docs"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, done.stdout.strip()


def main() -> None:
    """Fill a store once, then time the unchanged re-ingests; write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fill", choices=["placeholder", "real"], default="placeholder")
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
        if args.fill == "real":
            first, _, first_summary = run_ingest(corpus, env)
        else:
            first = fill_placeholder(corpus, Path(env["RAG_DATA_DIR"]))
            first_summary = f"{pages} pages stored by the pipeline with placeholder vectors"
        print(f"fill ({args.fill}) of {pages} pages: {first:.1f} s", flush=True)
        runs: list[float] = []
        cpus: list[float] = []
        summary = ""
        for _ in range(args.repeat):
            seconds, cpu, summary = run_ingest(corpus, env)
            cpus.append(cpu)
            expected = f"files: {pages} (created 0, replaced 0, unchanged {pages}, failed 0"
            assert summary.startswith(expected), summary
            runs.append(seconds)
            print(f"unchanged re-ingest: {seconds:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    lines = [
        "# `ragserver ingest` over an unchanged folder, as a whole process",
        "",
        f"Command: `.venv/bin/python bench/bench_unchanged_ingest.py --repeat {args.repeat} "
        f"--fill {args.fill}`",
        "",
        f"Corpus: the {pages} pages of the Python 3.11 docs dev set; default settings (FAISS, "
        "bundled MiniLM). Wall time of each process, start to exit.",
        "",
        f"Load average when it ran: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall "
        "time grows with it; CPU time much less).",
        "",
        "| run | wall seconds | CPU seconds |",
        "|-----|-------------:|------------:|",
        f"| fill the store ({args.fill}, for scale) | {first:.1f} | |",
    ]
    lines += [
        f"| unchanged re-ingest {i} | {s:.2f} | {c:.2f} |"
        for i, (s, c) in enumerate(zip(runs, cpus, strict=True), 1)
    ]
    lines += [
        "",
        f"Best unchanged run: {min(runs):.2f} s (target: under 3 s; 10.4 s before, when the "
        "model was loaded first).",
        "",
        "Fill:",
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
