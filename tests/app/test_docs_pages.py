"""``/docs`` and ``/redoc`` work offline: every file they load comes from this server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.reliability.server import ServerProcess, running_server

URL_ATTRIBUTE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


def referenced_urls(html: str) -> list[str]:
    """Every URL a page's markup or inline script names (src, href, and Swagger's url:)."""
    return [a or b for a, b in URL_ATTRIBUTE.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_no_external_host(client: TestClient, page: str) -> None:
    resp = client.get(page)
    assert resp.status_code == 200
    assert "default-src 'self'" in resp.headers["content-security-policy"]
    html = resp.text
    assert "http://" not in html
    assert "https://" not in html
    assert "//" not in re.sub(r"https?://|<!--.*?-->", "", html).replace("// ", "")
    urls = referenced_urls(html)
    assert any(u.endswith(".js") for u in urls), urls
    for url in urls:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("docs") / "data") as proc:
        yield proc


@pytest.mark.integration
@pytest.mark.parametrize(
    ("page", "ready"), [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")]
)
def test_docs_pages_render_in_a_browser_without_internet(
    server: ServerProcess, page: str, ready: str
) -> None:
    from playwright.sync_api import Route, sync_playwright

    from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/system_deps.sh test (make test does)")
    outside: list[str] = []
    errors: list[str] = []

    def offline(route: Route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:  # what a machine without internet would see
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.route("**/*", offline)
            tab = context.new_page()
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.goto(f"{server.url}{page}")
            tab.wait_for_selector(ready, timeout=60_000)
            assert "ragserver" in tab.inner_text(ready)
            if page == "/docs":  # the operations came from /openapi.json and are listed
                tab.wait_for_selector("[data-path='/v1/collections/{name}/search']", timeout=60_000)
        finally:
            browser.close()
    assert outside == []
    assert errors == []
