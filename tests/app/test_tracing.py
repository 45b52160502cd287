"""OpenTelemetry tracing: spans of a request and of the job it queues, sent to a real receiver.

The receivers (``tests/otlp_collector.py``) decode what the SDK's OTLP exporters send over
HTTP and gRPC on loopback. Spans are checked after the app has shut down, which exports what
is left: no waiting on the exporter's schedule.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from app.settings import Settings, TracingSettings
from tests.app.conftest import running_app
from tests.fakes import EchoGenerator, HashEmbedder
from tests.integration.live import LiveServer
from tests.otlp_collector import Collector, ReceivedSpan, grpc_collector, http_collector

SERVER, CONSUMER = 2, 5  # opentelemetry.proto.trace.v1.Span.SpanKind
TEXT = "Owls hunt at night using silent flight and keen hearing. Otters hold hands asleep."
REMOTE_TRACE = "0af7651916cd43dd8448eb211c80319c"
REMOTE_SPAN = "b7ad6b7169203331"


def traced(settings: Settings, endpoint: str, protocol: str) -> Settings:
    tracing = TracingSettings(endpoint=endpoint, protocol=protocol, service_name="rag-test")
    return settings.model_copy(update={"tracing": tracing})


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> dict[str, ReceivedSpan]:
    return {
        s.name: s for s in spans if s.parent_id == parent.span_id and s.trace_id == parent.trace_id
    }


def only(collector: Collector, name: str) -> ReceivedSpan:
    found = collector.named(name)
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def test_query_span_has_the_answering_steps_as_children(settings: Settings) -> None:
    with http_collector() as collector:
        app_settings = traced(settings, collector.endpoint, "http/protobuf")
        never_abstain = app_settings.llm.model_copy(update={"abstain_below": 0.0})
        app_settings = app_settings.model_copy(update={"llm": never_abstain})
        with running_app(app_settings, HashEmbedder(), EchoGenerator()) as client:
            files = [("files", ("owls.txt", io.BytesIO(TEXT.encode())))]
            assert client.post("/v1/collections/default/documents", files=files).is_success
            client.app.state.loader.wait().search.keywords.wait()  # type: ignore[attr-defined]
            body = {"question": "When do owls hunt?", "mode": "hybrid"}
            body["answer_mode"] = "generative"
            resp = client.post("/v1/collections/default/query", json=body)
            assert resp.status_code == 200, resp.text
            assert resp.json()["answer_mode"] == "generative"
        spans = collector.spans

    query = only(collector, "POST /v1/collections/{name}/query")
    assert query.kind == SERVER
    assert query.parent_id == ""  # no traceparent was sent: a new trace
    assert query.attributes["http.response.status_code"] == 200
    assert query.service == "rag-test"
    steps = children(spans, query)
    assert {"embedding", "store.search", "bm25.search", "packing", "generation"} <= set(steps)
    assert steps["store.search"].attributes["collection"] == "default"
    assert steps["store.search"].attributes["hits"] >= 1
    assert steps["bm25.search"].attributes["hits"] >= 1
    # The upload before it is a trace of its own, with the file's embedding and store write.
    upload = only(collector, "POST /v1/collections/{name}/documents")
    assert upload.trace_id != query.trace_id
    assert {"embedding", "store.replace_document"} <= set(children(spans, upload))


def test_background_job_span_is_the_uploading_requests_child(settings: Settings) -> None:
    with grpc_collector() as collector:
        app_settings = traced(settings, collector.endpoint, "grpc")
        with running_app(app_settings, HashEmbedder()) as client:
            resp = client.post(
                "/v1/collections/default/documents",
                files=[("files", ("owls.txt", io.BytesIO(TEXT.encode())))],
                params={"wait": "false"},
                headers={"traceparent": f"00-{REMOTE_TRACE}-{REMOTE_SPAN}-01"},
            )
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["id"]
            deadline = time.monotonic() + 60  # a safety net: the job ends long before
            while client.get(f"/v1/jobs/{job_id}").json()["finished_at"] is None:
                assert time.monotonic() < deadline, "the job did not finish"
                time.sleep(0.02)
        # Leaving the app exported every span (a stopping server hands unfinished jobs back).

    request = only(collector, "POST /v1/collections/{name}/documents")
    assert (request.trace_id, request.parent_id) == (REMOTE_TRACE, REMOTE_SPAN)  # continued
    job = only(collector, "ingest job")
    assert job.kind == CONSUMER
    assert (job.trace_id, job.parent_id) == (REMOTE_TRACE, request.span_id)
    assert job.attributes["job.id"] == job_id
    assert job.attributes["files"] == 1
    steps = children(collector.spans, job)
    assert {"embedding", "store.replace_document"} <= set(steps)
    assert steps["store.replace_document"].attributes["source"] == "owls.txt"


def test_settings_fall_back_to_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not TracingSettings().enabled
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "rag-prod")
    tracing = TracingSettings()
    assert (tracing.endpoint, tracing.protocol, tracing.service_name) == (
        "http://collector:4318",
        "http/protobuf",
        "rag-prod",
    )
    assert tracing.enabled
    monkeypatch.setenv("RAG_TRACING__ENDPOINT", "http://mine:4317")
    monkeypatch.setenv("RAG_TRACING__PROTOCOL", "grpc")
    mine = Settings().tracing
    assert (mine.endpoint, mine.protocol) == ("http://mine:4317", "grpc")
    monkeypatch.delenv("RAG_TRACING__PROTOCOL")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ValidationError, match="use http/protobuf or grpc"):
        TracingSettings()


def test_tracing_off_loads_no_sdk(tmp_path: Path) -> None:
    """Without an endpoint nothing is recorded: no SDK module is even imported."""
    script = """
import io, json, sys
from fastapi.testclient import TestClient
from app.main import create_app
from app.services.container import Components
from app.settings import Settings
from tests.fakes import HashEmbedder
app = create_app(Settings(), Components(embedder=HashEmbedder()))
with TestClient(app) as client:
    app.state.loader.wait(timeout=300)
    files = [("files", ("a.txt", io.BytesIO(b"owls hunt at night")))]
    ok = client.post("/v1/collections/default/documents", files=files).status_code
    hits = client.post("/v1/collections/default/search", json={"query": "owls"}).status_code
print(json.dumps([ok, hits, sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk"))]))
"""
    env = {
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "RAG_LLM__LOAD_AT_STARTUP": "false",
        "RAG_VECTORSTORE__BACKEND": "memory",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "HF_HUB_OFFLINE": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.splitlines()[-1]) == [201, 200, []]


@pytest.mark.integration
def test_ragserver_serve_exports_spans_over_otlp(tmp_path: Path) -> None:
    """A real ``ragserver serve`` with the standard variable set sends its spans over OTLP/HTTP."""
    with http_collector() as collector:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_SERVICE_NAME": "rag-live",
            "RAG_LLM__LOAD_AT_STARTUP": "false",
        }
        server = LiveServer(tmp_path / "data", env).start()
        try:
            files = {"files": ("owls.txt", TEXT.encode())}
            resp = httpx.post(f"{server.url}/v1/collections/default/documents", files=files)
            assert resp.status_code == 201, resp.text
            body = {"query": "silent flight", "mode": "hybrid", "top_k": 3}
            resp = httpx.post(f"{server.url}/v1/collections/default/search", json=body, timeout=60)
            assert resp.status_code == 200, resp.text
            assert resp.json()["hits"]
            name = "POST /v1/collections/{name}/search"

            def arrived(spans: list[ReceivedSpan]) -> bool:
                roots = [s for s in spans if s.name == name]
                return bool(roots) and {"embedding", "store.search", "bm25.search"} <= set(
                    children(spans, roots[0])
                )

            spans = collector.wait_for(arrived, timeout=120)  # exported every 5 s by default
        finally:
            server.stop()
    (search,) = [s for s in spans if s.name == name]
    assert search.service == "rag-live"
    assert search.kind == SERVER
    steps = children(spans, search)
    assert steps["embedding"].attributes["texts"] == 1
    assert all(s.trace_id == search.trace_id for s in steps.values())
