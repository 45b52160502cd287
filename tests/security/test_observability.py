"""Request ids, JSON logs and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import cli
from app.logs import JsonFormatter, configure_logging, request_id_var
from app.settings import Settings
from tests.app.conftest import running_app
from tests.fakes import HashEmbedder
from tests.security.conftest import app_of, upload, with_security


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with running_app(settings, HashEmbedder()) as c:
        yield c


def test_request_id_is_generated_or_taken_from_the_caller(client: TestClient) -> None:
    generated = client.get("/v1/collections").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert client.get("/v1/collections").headers["X-Request-ID"] != generated
    taken = client.get("/healthz", headers={"X-Request-ID": "trace-42.a:b"})
    assert taken.headers["X-Request-ID"] == "trace-42.a:b"
    for insane in ("has spaces", "x" * 200, "-leading", 'quote"d'):
        resp = client.get("/healthz", headers={"X-Request-ID": insane})
        assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"]), insane


def test_errors_carry_the_request_id_too(client: TestClient) -> None:
    for resp in (
        client.get("/v1/collections/missing-one", headers={"X-Request-ID": "r1"}),
        client.get("/v1/nothing-here", headers={"X-Request-ID": "r1"}),
        client.post("/v1/collections/default/search", json={}, headers={"X-Request-ID": "r1"}),
    ):
        assert resp.status_code in (404, 422)
        assert resp.headers["X-Request-ID"] == "r1"


def test_unhandled_error_is_a_500_problem_with_the_request_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> None:
        raise RuntimeError("kaboom")

    app_of(client).add_api_route("/v1/boom", boom)
    resp = client.get("/v1/boom", headers={"X-Request-ID": "boom-1"})
    assert resp.status_code == 500
    assert resp.headers["X-Request-ID"] == "boom-1"
    assert resp.json()["error"]["type"] == "InternalError"
    assert "kaboom" not in resp.text
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert [r.name for r in logged] == ["app.middleware"], "logged once"
    assert json.loads(JsonFormatter().format(logged[0]))["request_id"] == "boom-1"


def test_access_log_has_the_request_fields(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ragserver.access")
    resp = client.get("/v1/collections/default", headers={"X-Request-ID": "log-1"})
    records = [r for r in caplog.records if r.name == "ragserver.access"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["request_id"] == "log-1" == resp.headers["X-Request-ID"]
    assert line["method"] == "GET"
    assert line["path"] == "/v1/collections/default"
    assert line["route"] == "/v1/collections/{name}"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert {"time", "level", "logger", "message"} <= set(line)
    assert line["level"] == "INFO"
    assert line["logger"] == "ragserver.access"


def test_json_formatter_one_object_a_line_with_context() -> None:
    token = request_id_var.set("ctx-7")
    try:
        record = logging.LogRecord("app.x", logging.WARNING, __file__, 1, "a\nb %s", ("c",), None)
        line = JsonFormatter().format(record)
    finally:
        request_id_var.reset(token)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "a\nb c"
    assert entry["request_id"] == "ctx-7"
    assert entry["level"] == "WARNING"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "m", (), sys.exc_info())
    assert "ValueError: bad" in json.loads(JsonFormatter().format(record))["exception"]


def test_configure_logging_leaves_configured_logging_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    assert saved_handlers, "pytest's handlers are installed"
    assert configure_logging("debug") is False
    assert root.handlers == saved_handlers
    assert root.level == saved_level
    root.handlers = []
    try:
        assert configure_logging("warning") is True
        assert configure_logging("warning") is False, "idempotent"
        assert len(root.handlers) == 1
        assert root.level == logging.WARNING
        logging.getLogger("app.test").warning("hello %s", "json")
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert json.loads(line)["message"] == "hello json"


def test_serve_configures_json_logs_and_warns_when_exposed(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    configured: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    monkeypatch.setattr("app.logs.configure_logging", lambda level: configured.append(level))
    caplog.set_level(logging.WARNING)
    args = cli.build_parser().parse_args(["serve", "--host", "0.0.0.0"])
    assert cli.cmd_serve(args, settings) == 0
    assert configured == ["info"]
    assert calls[0]["log_config"] is None
    assert calls[0]["access_log"] is False
    assert calls[0]["host"] == "0.0.0.0"
    assert any("SECURITY WARNING" in r.getMessage() for r in caplog.records)
    caplog.clear()
    keyed = with_security(settings, api_keys=["k"])
    assert cli.cmd_serve(args, keyed) == 0
    assert not any("SECURITY WARNING" in r.getMessage() for r in caplog.records)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the Prometheus text format."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', metric))
        if metric.split("{")[0] == name and found == labels:
            return float(value)
    raise AssertionError(f"{name}{labels} not in metrics")


def test_metrics_content(settings: Settings) -> None:
    with running_app(settings, HashEmbedder()) as client:
        assert upload(client, [("a.txt", b"Kites fly in wind."), ("b.txt", b"")]).status_code == 207
        client.post("/v1/collections/default/search", json={"query": "kites"})
        client.get("/v1/collections/nope-not-here")
        client.get("/v1/collections/default/documents/a-txt/chunks")
        metrics = app_of(client).state.metrics
        assert sample(client.get("/metrics").text, "ragserver_generation_queue_depth") == 0
        metrics.track_generation_queue(lambda: 3, lambda: 1)
        with metrics.generation_seconds.time():
            pass
        resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert "X-Request-ID" in resp.headers
    posts = "/v1/collections/{name}/documents"
    assert sample(text, "ragserver_http_requests_total", method="POST", route=posts, status="207")
    assert (
        sample(
            text,
            "ragserver_http_requests_total",
            method="GET",
            route="/v1/collections/{name}",
            status="404",
        )
        == 1
    )
    assert 'route="/v1/collections/default' not in text, "routes are templates, not raw paths"
    assert "nope-not-here" not in text
    assert (
        sample(text, "ragserver_http_request_duration_seconds_count", method="POST", route=posts)
        == 1
    )
    assert sample(text, "ragserver_ingest_files_total", status="created") == 1
    assert sample(text, "ragserver_ingest_files_total", status="failed") == 1
    assert sample(text, "ragserver_ingest_failures_total", error_type="EmptyDocument") == 1
    assert sample(text, "ragserver_ingest_chunks_total") >= 1
    assert sample(text, "ragserver_embedding_duration_seconds_count", kind="documents") >= 1
    assert sample(text, "ragserver_embedding_duration_seconds_count", kind="query") >= 1
    assert sample(text, "ragserver_embedded_texts_total", kind="query") >= 1
    assert sample(text, "ragserver_generation_duration_seconds_count") == 1
    assert sample(text, "ragserver_generation_queue_depth") == 3
    assert sample(text, "ragserver_generation_active") == 1
    assert sample(text, "ragserver_http_requests_in_flight") == 1  # the scrape itself


def test_each_app_has_its_own_registry(settings: Settings, tmp_path: Any) -> None:
    other = settings.model_copy(update={"data_dir": tmp_path / "other"})
    with running_app(settings, HashEmbedder()) as one, running_app(other, HashEmbedder()) as two:
        for _ in range(3):
            one.get("/v1/collections")
        two.get("/v1/collections")
        route = {"method": "GET", "route": "/v1/collections", "status": "200"}
        assert sample(one.get("/metrics").text, "ragserver_http_requests_total", **route) == 3
        assert sample(two.get("/metrics").text, "ragserver_http_requests_total", **route) == 1


def test_health_polls_are_logged_quietly(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ragserver.access")
    client.get("/healthz")
    client.get("/readyz")
    assert not [r for r in caplog.records if r.name == "ragserver.access"]
    client.get("/v1/collections")
    assert [r.levelno for r in caplog.records if r.name == "ragserver.access"] == [logging.INFO]
