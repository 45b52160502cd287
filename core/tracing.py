"""Trace spans for the work each layer does, through the OpenTelemetry API only.

Every layer may open a span here (``with span("embedding", texts=12): ...``). Until
``app/telemetry.py`` installs an SDK tracer provider (only when an OTLP endpoint is
configured), the API hands out non-recording spans: nothing is kept or sent.

A background job runs on another thread, maybe in another process, after the request that
queued it has ended. The request's trace context crosses over as a carrier, a dict of W3C
Trace Context headers (``{"traceparent": "00-<trace id>-<span id>-01"}``) that the job keeps
with itself: ``inject_context()`` when queuing, ``job_span(carrier, ...)`` when running.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

TRACER_NAME = "ragserver"


@functools.cache
def _tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


@functools.cache
def _propagator() -> TraceContextTextMapPropagator:
    return TraceContextTextMapPropagator()


def span(
    name: str, kind: trace.SpanKind = trace.SpanKind.INTERNAL, **attributes: AttributeValue
) -> AbstractContextManager[trace.Span]:
    """Open a span as a child of the current one, current until the block ends.

    Args:
        name: What the span measures: ``embedding``, ``store.search``, ``bm25.search``,
            ``packing``, ``generation``, ...
        kind: The OpenTelemetry span kind.
        **attributes: Span attributes (strings, numbers, booleans).

    Returns:
        A context manager yielding the span; an exception leaving the block is recorded.
    """
    return _tracer().start_as_current_span(name, kind=kind, attributes=attributes)


def start_span(name: str, **attributes: AttributeValue) -> trace.Span:
    """Start a child of the current span without making it current (the caller ends it).

    For work that crosses ``await`` points inside an async generator, where a context
    attached in one step cannot be detached in another.
    """
    return _tracer().start_span(name, attributes=attributes)


def inject_context() -> dict[str, str]:
    """The current span's context as W3C Trace Context headers (empty when not tracing).

    Store the result with a queued job and hand it to ``job_span`` when the job runs.
    """
    carrier: dict[str, str] = {}
    _propagator().inject(carrier)
    return carrier


@contextmanager
def job_span(
    carrier: Mapping[str, str] | None,
    name: str = "ingest job",
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[trace.Span]:
    """Run a job inside a span whose parent is the request that queued it.

    Args:
        carrier: What ``inject_context`` returned in the request (None or empty: a new trace).
        name: The span's name.
        attributes: Span attributes, e.g. ``job.id``, ``collection``, ``files``.

    Yields:
        The job's span (a ``CONSUMER`` span, current for the block).
    """
    parent = _propagator().extract(dict(carrier or {}))
    with _tracer().start_as_current_span(
        name, context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes
    ) as current:
        yield current
