"""The body of ``ragserver ingest``: ingest paths with a progress bar, print a summary."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from ingest.pipeline import IngestPipeline, IngestSummary
from vectorstores.base import VectorStore


def format_summary(summary: IngestSummary) -> str:
    """Render a summary as the lines the CLI prints."""
    lines = [
        f"files: {summary.files} (created {summary.created}, replaced {summary.replaced}, "
        f"unchanged {summary.unchanged}, failed {len(summary.failed)}, "
        f"skipped {summary.skipped})",
        f"chunks: {summary.chunks}",
        f"seconds: {summary.seconds:.1f}",
        f"chunks per second: {summary.chunks_per_second:.1f}",
    ]
    warnings = [w for result in summary.results for w in result.warnings]
    if warnings:
        lines.append("warnings:")
        lines.extend(f"  {warning}" for warning in warnings)
    if summary.failed:
        lines.append("failed:")
        # Error messages name their file already; do not say it twice.
        lines.extend(
            f"  {reason}" if reason.startswith(source) else f"  {source}: {reason}"
            for source, reason in summary.failed
        )
    return "\n".join(lines)


def run_ingest(
    paths: Iterable[Path],
    store: VectorStore,
    pipeline: IngestPipeline,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    out: TextIO | None = None,
) -> IngestSummary:
    """Ingest files and folders into ``store``, showing a progress bar, and print a summary.

    Args:
        paths: Files and folders (walked recursively).
        store: The collection to write into.
        pipeline: The configured pipeline.
        include: Globs a file must match (any of them), if given.
        exclude: Globs that leave a file out.
        out: Where the summary is printed (standard output by default; the progress bar goes
            to stderr).

    Returns:
        The summary; the caller decides the exit status (non-zero when ``failed``).
    """
    summary = pipeline.ingest_paths(
        store, [Path(p) for p in paths], include=include, exclude=exclude, progress_bar=True
    )
    store.persist()
    print(format_summary(summary), file=out or sys.stdout)
    return summary
