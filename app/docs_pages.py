"""``/docs`` (Swagger UI) and ``/redoc`` served from files of an installed package, no CDN.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they stay blank offline. The same
pages (``get_swagger_ui_html``, ``get_redoc_html``) are served here with local URLs: the
JavaScript, CSS and favicon ship in the ``fastapi-offline`` wheel and are mounted at
``/docs-static``; Google fonts and Swagger's online validator are turned off. A
Content-Security-Policy keeps the browser on this origin, so what the bundles would still
fetch from elsewhere (ReDoc's footer logo) is never requested; the logo hides itself.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_URL = "/docs-static"
# Both pages start from an inline script and set inline styles; ReDoc searches in a blob worker.
DOCS_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


def assets_dir() -> Path:
    """The folder of Swagger UI's and ReDoc's files inside the installed package."""
    return Path(str(files("fastapi_offline") / "static"))


def local_only(page: HTMLResponse) -> HTMLResponse:
    """Add the policy that lets the page load nothing from another origin."""
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their files; create the app with ``docs_url=None``."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-static")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return local_only(
            get_swagger_ui_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=f"{title} - API docs",
                oauth2_redirect_url=OAUTH2_REDIRECT_URL,
                swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return local_only(
            get_redoc_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=f"{title} - API reference",
                redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            )
        )
