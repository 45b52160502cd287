"""One real ``ragserver serve`` per module (API keys on, the real embedding model, answers from
a fast deterministic generator behind a real OpenAI-compatible server) and one Chromium.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.integration.live import LiveServer
from tests.llms.openai_compat_server import LoopbackServer, create_compat_app
from tests.ui.browser import ADMIN_KEY, CHROMIUM, CHROMIUM_ARGS, READER_KEY, GatedGenerator


@pytest.fixture(scope="module")
def generator() -> GatedGenerator:
    return GatedGenerator()


@pytest.fixture(scope="module")
def llm_server(generator: GatedGenerator) -> Iterator[LoopbackServer]:
    with LoopbackServer(create_compat_app(generator)) as server:
        yield server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, llm_server: LoopbackServer
) -> Iterator[LiveServer]:
    """``ragserver serve`` with keys: an admin key and a read-only one."""
    data = tmp_path_factory.mktemp("ui") / "data"
    srv = LiveServer(
        data,
        {
            "RAG_SECURITY__API_KEYS": f"{ADMIN_KEY},{READER_KEY}:*:ro",
            "RAG_LLM__BACKEND": "openai",
            "RAG_LLM__BASE_URL": f"{llm_server.url}/v1",
            "RAG_LLM__MODEL": "echo",
            "RAG_LLM__MAX_RETRIES": "0",
            # The echo model is no rewriter: follow-ups take the deterministic rewrite.
            "RAG_CONVERSATIONS__REWRITE": "rules",
            # The ONNX query export would add a process; the page needs no fast queries.
            "RAG_EMBEDDING__QUERY_BACKEND": "same",
        },
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/system_deps.sh test (make test does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    """The server's API with the admin key, to set up and check what the page did."""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=f"{server.url}/v1", headers=headers, timeout=120) as client:
        yield client


@pytest.fixture
def shots(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where screenshots go: ``--ui-screenshots DIR`` (the README's come from docs/), else tmp."""
    chosen = request.config.getoption("--ui-screenshots")
    return Path(chosen) if chosen else tmp_path / "screenshots"
