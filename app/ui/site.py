"""Serves the web page: ``GET /`` redirects to ``/ui/``, the files come from ``static/``.

The page is plain HTML, CSS and JavaScript modules inside the package (no build step, no CDN),
and talks only to the public ``/v1`` API of the same origin. It is public: the API calls it makes
carry the user's key, the files themselves hold nothing secret. Every file is sent with a
Content-Security-Policy that allows scripts, styles, images and requests from this origin only,
and no inline script, so text from documents or models can never run even if it reached the DOM
as markup.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static"
UI_PATH = "/ui"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
"""Sent with every file of the page; ``no-cache`` revalidates (ETag) so an upgrade shows."""


class PageFiles(StaticFiles):
    """Static files with the page's security headers on every response."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """Serve one file (or the 404 problem), adding the headers."""
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


def install_ui(app: FastAPI) -> None:
    """Mount the page at ``/ui/`` and redirect ``/`` to it."""

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{UI_PATH}/", status_code=307)

    app.mount(UI_PATH, PageFiles(directory=STATIC_DIR, html=True), name="ui")
