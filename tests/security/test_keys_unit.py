"""Key parsing, settings from the environment, the token bucket and the access helpers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from app.security import (
    ANONYMOUS,
    PRINCIPAL_SCOPE_KEY,
    KeyRing,
    Principal,
    RateLimiter,
    bearer_token,
    check_collection_access,
    is_loopback,
    open_access_warnings,
    parse_key_entry,
    visible_collections,
)
from app.services.answers import AnswerRequest, check_limits
from app.settings import Settings
from core.errors import ConfigurationError, Forbidden, LimitExceeded


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("k1,k2:docs:ro", ["k1", "k2:docs:ro"]),
        (" k1 , k2:docs+notes:rw ,", ["k1", "k2:docs+notes:rw"]),
        ('["k1", "k2:*:ro"]', ["k1", "k2:*:ro"]),
        ("single", ["single"]),
        ("", []),
    ],
)
def test_api_keys_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]
) -> None:
    monkeypatch.setenv("RAG_SECURITY__API_KEYS", raw)
    assert Settings().security.api_keys == expected


def test_keys_file_and_limits_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAG_SECURITY__API_KEYS_FILE", str(tmp_path / "keys"))
    monkeypatch.setenv("RAG_SECURITY__RATE_LIMIT_PER_MINUTE", "120")
    security = Settings().security
    assert security.api_keys_file == tmp_path / "keys"
    assert security.rate_limit_per_minute == 120


@pytest.mark.parametrize(
    ("entry", "collections", "read_only"),
    [
        ("abc", None, False),
        ("abc:*:ro", None, True),
        ("abc:docs:ro", frozenset({"docs"}), True),
        ("abc:docs+notes:rw", frozenset({"docs", "notes"}), False),
        ("abc:docs", frozenset({"docs"}), False),
        ("abc:docs:RO", frozenset({"docs"}), True),
    ],
)
def test_parse_key_entry(entry: str, collections: frozenset[str] | None, read_only: bool) -> None:
    key, principal = parse_key_entry(entry, "test")
    assert key == "abc"
    assert principal.collections == collections
    assert principal.read_only is read_only
    assert principal.authenticated
    assert "abc" not in principal.id


@pytest.mark.parametrize("entry", ["", "abc:docs:rx", "abc::ro", "a b:docs:ro", "abc:d:ro:x"])
def test_bad_entries_are_refused_without_echoing_the_key(entry: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_key_entry(entry, "RAG_SECURITY__API_KEYS entry 1")
    assert "entry 1" in info.value.message
    if entry.startswith("abc"):
        assert "abc" not in info.value.message


def test_one_key_with_two_scopes_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        KeyRing([("k:docs:ro", "a"), ("k:docs:rw", "b")])
    assert len(KeyRing([("k:docs:ro", "a"), ("k:docs:ro", "b")])) == 1


def test_keyring_authenticates_exactly() -> None:
    ring = KeyRing([("secret-one", "a"), ("secret-two:docs:ro", "b")])
    assert ring.enabled
    one = ring.authenticate("secret-one")
    assert one is not None
    assert one.collections is None
    two = ring.authenticate("secret-two")
    assert two is not None
    assert two.read_only
    for wrong in ("secret-on", "secret-one ", "SECRET-ONE", "", "secret-two:docs:ro", "\udcff"):
        assert ring.authenticate(wrong) is None
    assert not KeyRing().enabled


def test_missing_keys_file_is_a_configuration_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    security = settings.security.model_copy(update={"api_keys_file": tmp_path / "missing"})
    with pytest.raises(ConfigurationError, match="API_KEYS_FILE"):
        KeyRing.from_settings(security)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_token_bucket_allows_burst_then_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=3, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(1.0)
    assert limiter.acquire("b") == 0.0, "callers have their own buckets"
    now[0] = 0.5
    assert limiter.acquire("a") == pytest.approx(0.5)
    now[0] = 1.0
    assert limiter.acquire("a") == 0.0
    now[0] = 100.0
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0], "refills to burst only"
    assert limiter.acquire("a") > 0


def test_token_bucket_off_and_bounded() -> None:
    assert RateLimiter(per_minute=0, burst=1).acquire("a") == 0.0
    limiter = RateLimiter(per_minute=60, burst=1, clock=lambda: 0.0, max_callers=10)
    for i in range(100):
        limiter.acquire(f"ip:{i}")
    assert len(limiter._buckets) == 10


def request_as(principal: Principal | None) -> Request:
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/", "headers": []}
    if principal is not None:
        scope[PRINCIPAL_SCOPE_KEY] = principal
    return Request(scope)


def test_check_collection_access_for_body_named_collections() -> None:
    _, reader = parse_key_entry("k:docs:ro", "t")
    _, writer = parse_key_entry("k:docs+notes:rw", "t")
    check_collection_access(request_as(reader), "docs")
    check_collection_access(request_as(writer), "notes", write=True)
    check_collection_access(request_as(None), "anything", write=True)  # keys off: anonymous
    with pytest.raises(Forbidden) as outside:
        check_collection_access(request_as(reader), "secret")
    with pytest.raises(Forbidden) as missing:
        check_collection_access(request_as(reader), "no-such-collection")
    assert outside.value.message == missing.value.message
    with pytest.raises(Forbidden, match="read-only"):
        check_collection_access(request_as(reader), "docs", write=True)
    assert visible_collections(request_as(writer), ["a", "docs", "notes"]) == ["docs", "notes"]
    assert visible_collections(request_as(ANONYMOUS), ["a", "b"]) == ["a", "b"]


def test_question_and_history_limits() -> None:
    limits = Settings().security
    limit = limits.max_question_chars
    check_limits(limits, AnswerRequest(question="x" * limit))
    with pytest.raises(LimitExceeded, match="MAX_QUESTION_CHARS"):
        check_limits(limits, AnswerRequest(question="x" * (limit + 1)))
    most = limits.max_history_messages
    turn = {"role": "user", "content": "hi"}
    check_limits(limits, AnswerRequest(question="q", history=[turn] * most))
    with pytest.raises(LimitExceeded, match="MAX_HISTORY_MESSAGES"):
        check_limits(limits, AnswerRequest(question="q", history=[turn] * (most + 1)))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_open_access_warnings() -> None:
    assert open_access_warnings(KeyRing([("k", "t")]), "0.0.0.0") == []
    local = open_access_warnings(KeyRing(), "127.0.0.1")
    assert len(local) == 1
    assert "no API keys" in local[0]
    exposed = open_access_warnings(KeyRing(), "0.0.0.0")
    assert len(exposed) == 2
    assert "SECURITY WARNING" in exposed[1]
    assert "0.0.0.0" in exposed[1]


def test_open_server_warns_at_start_up(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.app.conftest import running_app
    from tests.fakes import HashEmbedder

    caplog.set_level(logging.WARNING)
    exposed = settings.model_copy(
        update={"server": settings.server.model_copy(update={"host": "0.0.0.0"})}
    )
    with running_app(exposed, HashEmbedder()):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no API keys configured" in w for w in warnings)
    assert any("SECURITY WARNING" in w for w in warnings)
