"""OpenTelemetry tracing: the SDK set-up, and how FastAPI traces each request.

Off unless ``settings.tracing.endpoint`` (or ``OTEL_EXPORTER_OTLP_ENDPOINT``) is set: then
``start_tracing`` installs an SDK tracer provider exporting over OTLP (http/protobuf or grpc)
in batches. FastAPI's own telemetry (``FASTAPI_TELEMETRY``) then opens a ``SERVER`` span per
request, named ``METHOD route-template`` and continuing the caller's trace when it sends a W3C
``traceparent``; it sees no SDK provider when tracing is off and stays out of the way. Off,
the SDK is not imported and the spans of the layers below (``core.tracing``) are the API's
no-ops.

The span tree of one question: ``POST /v1/collections/{name}/query`` > ``embedding``,
``store.search``, ``bm25.search``, ``packing``, ``generation``; of a background upload: the
request > ``ingest job`` (a ``CONSUMER`` span, parented through the carrier the job keeps,
see ``core.tracing.job_span``) > ``embedding``, ``store.replace_document``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace

from app.settings import TracingSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

log = logging.getLogger(__name__)

# FastAPI(telemetry=...): request spans only, from the provider ``start_tracing`` installs.
# No exporters of its own from the environment, no HTTP metrics (Prometheus has them), no
# log records (they would carry request bodies that failed validation), no spans per
# dependency, so a request's children are the steps that do the work.
FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": True,
    "auto_configure": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


@dataclass
class Tracing:
    """The exporting half of tracing, running until ``close``."""

    processor: SpanProcessor

    def close(self) -> None:
        """Export what is left and stop exporting."""
        self.processor.force_flush()
        self.processor.shutdown()


def _exporter(settings: TracingSettings) -> Any:
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        insecure = not settings.endpoint.startswith("https://")
        return OTLPSpanExporter(endpoint=settings.endpoint, insecure=insecure)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(endpoint=settings.endpoint.rstrip("/") + "/v1/traces")


def start_tracing(settings: TracingSettings) -> Tracing | None:
    """Install the SDK tracer provider and its OTLP exporter; None when tracing is off.

    The provider is process-wide (OpenTelemetry allows one); a second app in the same
    process adds its exporter to the provider already installed.
    """
    if not settings.enabled:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    current = trace.get_tracer_provider()
    provider = current if isinstance(current, TracerProvider) else None
    if provider is None:
        provider = TracerProvider(resource=Resource({"service.name": settings.service_name}))
        trace.set_tracer_provider(provider)
    processor = BatchSpanProcessor(_exporter(settings))
    provider.add_span_processor(processor)
    log.info("tracing: spans go to %s over OTLP %s", settings.endpoint, settings.protocol)
    return Tracing(processor)
