"""How the server serves the page: where it is, who may fetch it, the headers it carries."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from app.settings import SecuritySettings, ServerSettings, Settings
from app.ui.site import CONTENT_SECURITY_POLICY, STATIC_DIR
from tests.app.conftest import running_app
from tests.fakes import HashEmbedder

ROOT = Path(__file__).resolve().parents[2]
KEY = "site-key-0123456789"


@pytest.fixture
def keyed(_isolated_data_dir: Path) -> Settings:
    return Settings(data_dir=_isolated_data_dir, security=SecuritySettings(api_keys=[KEY]))


def page_files() -> list[str]:
    return sorted(
        p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file()
    )


def test_root_redirects_to_the_page_which_needs_no_key(keyed: Settings) -> None:
    with running_app(keyed, HashEmbedder()) as client:
        root = client.get("/", follow_redirects=False)
        assert root.status_code == 307
        assert root.headers["location"] == "/ui/"
        page = client.get("/ui/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="js/main.js">' in page.text
        # The page is public; the API it calls is not.
        assert client.get("/v1/collections").status_code == 401


@pytest.mark.parametrize("name", page_files())
def test_every_file_carries_the_security_headers(keyed: Settings, name: str) -> None:
    with running_app(keyed, HashEmbedder()) as client:
        resp = client.get(f"/ui/{name}")
    assert resp.status_code == 200, name
    assert resp.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["referrer-policy"] == "no-referrer"
    kind = {"html": "text/html", "css": "text/css", "js": "javascript", "svg": "image/svg+xml"}
    assert kind[name.rsplit(".", 1)[1]] in resp.headers["content-type"]


def test_the_policy_allows_this_origin_only_and_no_inline_script() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src", "img-src"):
        assert directives[name] == "'self'", name
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert directives["frame-ancestors"] == "'none'"


def test_the_page_has_no_inline_script_style_or_remote_resource() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert "<style" not in html
    assert " style=" not in html
    assert re.findall(r"\son[a-z]+=", html) == []
    for name in page_files():
        # An XML namespace is a name, not something fetched.
        text = (STATIC_DIR / name).read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text) == [], name
        assert "innerHTML" not in text, name
        assert "insertAdjacentHTML" not in text, name


def test_a_missing_file_is_a_404_problem(keyed: Settings) -> None:
    with running_app(keyed, HashEmbedder()) as client:
        resp = client.get("/ui/nothing-here.js")
    assert resp.status_code == 404
    assert resp.json()["error"]["type"] == "NotFound"


def test_the_page_can_be_turned_off(keyed: Settings) -> None:
    settings = keyed.model_copy(update={"server": ServerSettings(ui=False)})
    with running_app(settings, HashEmbedder()) as client:
        assert client.get("/", follow_redirects=False).status_code == 404
        assert client.get("/ui/").status_code == 404


def test_a_wheel_carries_every_file_of_the_page() -> None:
    """The package-data globs of pyproject.toml cover every file under app/ui/static."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["app"]
    packaged = {
        p.relative_to(STATIC_DIR).as_posix()
        for pattern in globs
        for p in (ROOT / "app").glob(pattern)
        if p.is_file()
    }
    assert packaged == set(page_files())
