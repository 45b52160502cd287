"""Prometheus metrics, one registry per app (several apps in one process do not clash).

The middleware counts requests; the services report ingestion, generation and the
generation queue through ``Metrics``' ``ServiceObserver`` methods (``file_ingested``,
``answer_generated``, ``watch_generation_queue``): the app hands its ``Metrics`` to
``build_services`` as the observer. ``TimedEmbedder`` times the embedder's calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ingest.base import Embedder
from ingest.results import FileResult

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
UNMATCHED_ROUTE = "unmatched"
"""The route label of requests no route matched (keeps the label set bounded)."""


class Metrics:
    """The server's metrics and the registry they are exposed from.

    Attributes:
        registry: This app's own registry (never the process-global one).
        requests: Requests answered, by method, route template and status.
        request_seconds: Request latency (to the end of the response), by method and route.
        in_flight: Requests being served.
        ingest_files: Uploaded files ingested, by outcome (created, replaced, unchanged, failed).
        ingest_chunks: Chunks stored by ingestion.
        ingest_failures: Files that failed, by error type.
        embedding_seconds: Time spent in the embedder, by kind (documents, query).
        embedded_texts: Texts embedded, by kind.
        generation_seconds: Time to generate one answer (the answer service observes it).
        generation_queue_depth: Generations waiting for a slot (see ``track_generation_queue``).
        generation_active: Generations running.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ragserver_http_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "ragserver_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "ragserver_http_requests_in_flight", "HTTP requests being served.", registry=r
        )
        self.ingest_files = Counter(
            "ragserver_ingest_files", "Uploaded files ingested, by outcome.", ["status"], registry=r
        )
        self.ingest_chunks = Counter(
            "ragserver_ingest_chunks", "Chunks stored by ingestion.", registry=r
        )
        self.ingest_failures = Counter(
            "ragserver_ingest_failures",
            "Uploaded files that failed, by error type.",
            ["error_type"],
            registry=r,
        )
        self.embedding_seconds = Histogram(
            "ragserver_embedding_duration_seconds",
            "Time spent embedding, by kind.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.embedded_texts = Counter(
            "ragserver_embedded_texts", "Texts embedded, by kind.", ["kind"], registry=r
        )
        self.generation_seconds = Histogram(
            "ragserver_generation_duration_seconds",
            "Time to generate one answer.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.generation_queue_depth = Gauge(
            "ragserver_generation_queue_depth", "Generations waiting for a slot.", registry=r
        )
        self.generation_active = Gauge(
            "ragserver_generation_active", "Generations running.", registry=r
        )
        for kind in ("documents", "query"):
            self.embedding_seconds.labels(kind)
            self.embedded_texts.labels(kind)
        for status in ("created", "replaced", "unchanged", "failed"):
            self.ingest_files.labels(status)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def observe_ingest(self, status: str, chunks: int, error_type: str | None = None) -> None:
        """Count one ingested file: its outcome, the chunks stored, the failure's type."""
        self.ingest_files.labels(status).inc()
        if status in ("created", "replaced"):
            self.ingest_chunks.inc(chunks)
        if status == "failed":
            self.ingest_failures.labels(error_type or "IngestError").inc()

    def observe_generation(self, seconds: float) -> None:
        """Record one generation's duration (or use ``generation_seconds.time()``)."""
        self.generation_seconds.observe(seconds)

    def track_generation_queue(
        self, depth: Callable[[], float], active: Callable[[], float] | None = None
    ) -> None:
        """Read the generation queue's depth (and running count) at each scrape."""
        self.generation_queue_depth.set_function(depth)
        if active is not None:
            self.generation_active.set_function(active)

    def file_ingested(self, result: FileResult) -> None:
        """``ServiceObserver``: count an uploaded file's outcome."""
        self.observe_ingest(result.status, result.chunk_count, result.error_type)

    def answer_generated(self, seconds: float) -> None:
        """``ServiceObserver``: record a generation's duration."""
        self.observe_generation(seconds)

    def watch_generation_queue(
        self, depth: Callable[[], float], active: Callable[[], float]
    ) -> None:
        """``ServiceObserver``: read the generation queue at each scrape."""
        self.track_generation_queue(depth, active)

    def render(self) -> bytes:
        """Return the registry in the Prometheus text format."""
        return generate_latest(self.registry)


class TimedEmbedder:
    """Wraps an ``Embedder`` to time its calls; it is an ``Embedder`` with the same answers."""

    def __init__(self, inner: Embedder, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.max_seq_length = inner.max_seq_length
        self.chunk_tokenizer = inner.chunk_tokenizer
        self.cache_namespace = inner.cache_namespace

    @property
    def backend_info(self) -> dict[str, str]:
        """The wrapped embedder's backends now (the query backend may change)."""
        return self.inner.backend_info

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed documents' chunks, timing the call."""
        started = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.metrics.embedding_seconds.labels("documents").observe(
                time.perf_counter() - started
            )
            self.metrics.embedded_texts.labels("documents").inc(len(texts))

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one query, timing the call."""
        started = time.perf_counter()
        try:
            return self.inner.embed_query(text)
        finally:
            self.metrics.embedding_seconds.labels("query").observe(time.perf_counter() - started)
            self.metrics.embedded_texts.labels("query").inc()

    def count_tokens(self, text: str) -> int:
        """Count tokens as the wrapped embedder does."""
        return self.inner.count_tokens(text)


router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics (needs a key unless RAG_SECURITY__METRICS_PUBLIC)."""
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
