"""What the services report as they work: a typed observer handed to them when built.

``app.metrics.Metrics`` is the observer a server uses; ``NullObserver`` is the default, so a
service built without metrics (the CLI, tests) needs no checks before reporting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ingest.results import FileResult


class ServiceObserver(Protocol):
    """Receives the services' events. Calls come from worker threads and must not block."""

    def file_ingested(self, result: FileResult) -> None:
        """One uploaded file's outcome (created, replaced, unchanged or failed)."""

    def answer_generated(self, seconds: float) -> None:
        """One answer's generation time."""

    def watch_generation_queue(
        self, depth: Callable[[], float], active: Callable[[], float]
    ) -> None:
        """Read the generation queue's depth and running count whenever needed."""


class NullObserver:
    """An observer that ignores every event."""

    def file_ingested(self, result: FileResult) -> None:
        """Ignore a file's outcome."""

    def answer_generated(self, seconds: float) -> None:
        """Ignore a generation time."""

    def watch_generation_queue(
        self, depth: Callable[[], float], active: Callable[[], float]
    ) -> None:
        """Ignore the generation queue."""
