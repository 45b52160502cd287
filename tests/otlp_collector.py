"""A tiny OTLP trace receiver on loopback, over HTTP (``POST /v1/traces``) or gRPC.

It decodes each export with opentelemetry-proto and keeps the spans, so tests can check what a
real exporter sent: names, trace ids and parent span ids.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.loopback import served


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, ids as hex ("" for a root's parent)."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    service: str


@dataclass
class Collector:
    """The spans received so far; ``wait_for`` blocks until a condition holds."""

    endpoint: str = ""
    spans: list[ReceivedSpan] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def receive(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        """Keep every span of one export."""
        got = []
        for resource_spans in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    values = {a.key: _value(a.value) for a in s.attributes}
                    got.append(
                        ReceivedSpan(
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                            s.kind,
                            values,
                            attrs.get("service.name", ""),
                        )
                    )
        with self._changed:
            self.spans.extend(got)
            self._changed.notify_all()

    def wait_for(
        self, condition: Callable[[list[ReceivedSpan]], bool], timeout: float = 60.0
    ) -> list[ReceivedSpan]:
        """Block until ``condition(spans)`` holds (a safety bound, not a timing)."""
        with self._changed:
            if not self._changed.wait_for(lambda: condition(list(self.spans)), timeout):
                names = sorted(s.name for s in self.spans)
                raise AssertionError(f"the expected spans did not arrive; got {names}")
            return list(self.spans)

    def named(self, name: str) -> list[ReceivedSpan]:
        """The spans called ``name``."""
        with self._changed:
            return [s for s in self.spans if s.name == name]


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@contextmanager
def http_collector() -> Iterator[Collector]:
    """An OTLP/HTTP (protobuf) receiver; ``endpoint`` is its base URL."""
    collector = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            collector.receive(request)
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    with served(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        collector.endpoint = url
        yield collector


@contextmanager
def grpc_collector() -> Iterator[Collector]:
    """An OTLP/gRPC receiver; ``endpoint`` is ``http://127.0.0.1:PORT``."""
    import grpc

    collector = Collector()

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC name
            collector.receive(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    collector.endpoint = f"http://127.0.0.1:{port}"
    try:
        yield collector
    finally:
        server.stop(grace=None)
