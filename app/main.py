"""The FastAPI application: ``create_app(settings)`` and its lifespan."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.docs_pages import install_docs
from app.errors import register_error_handlers
from app.logs import configure_logging
from app.metrics import Metrics, TimedEmbedder
from app.metrics import router as metrics_router
from app.middleware import install_middleware
from app.routers import (
    answers,
    collections,
    conversations,
    documents,
    embeddings,
    health,
    jobs,
    openai_compat,
    prompts,
    search,
)
from app.security import ACCESS_RESPONSES, KeyRing, open_access_warnings
from app.services.container import Components, Services, build_embedder, build_services
from app.settings import Settings
from app.telemetry import FASTAPI_TELEMETRY, start_tracing
from app.ui.site import install_ui
from core.errors import RagError

log = logging.getLogger(__name__)
API_VERSION = "0.1.0"


class Loader:
    """Builds the services on a background thread so /healthz answers at once.

    ``/readyz`` is 503 until ``services`` is set; /v1 routes answer 503 meanwhile.
    """

    def __init__(
        self, settings: Settings, components: Components | None, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.components = components
        self.metrics = metrics
        self.services: Services | None = None
        self.error: str | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._load, name="loader", daemon=True)

    def start(self) -> None:
        """Start loading in the background."""
        self._thread.start()

    def _load(self) -> None:
        try:
            components = self.components or Components()
            if self.metrics is not None:
                embedder = components.embedder or build_embedder(self.settings)
                timed = TimedEmbedder(embedder, self.metrics)
                components = dataclasses.replace(components, embedder=timed, observer=self.metrics)
            services = build_services(self.settings, components)
            with self._lock:
                late = self._closed
                if not late:
                    self.services = services
            if late:  # the server stopped while this was loading
                services.close()
        except RagError as exc:  # our own errors say what to do: one line, no traceback
            log.error("start-up failed: %s: %s", type(exc).__name__, exc.message)
            self.error = f"{type(exc).__name__}: {exc.message}"
        except Exception as exc:  # noqa: BLE001 - reported through /readyz and the log
            log.exception("start-up failed")
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()

    def wait(self, timeout: float | None = None) -> Services:
        """Block until loaded; raises RuntimeError if loading failed."""
        self.done.wait(timeout)
        if self.services is None:
            raise RuntimeError(self.error or "services did not load in time")
        return self.services

    def close(self) -> None:
        """Close what was built; a load still running (waiting for a lock) is left behind.

        The loader thread is a daemon and closes what it builds after this, so a server
        stopped while it still waits for a previous process's FAISS lock exits at once.
        """
        finished = self.done.wait(self.settings.jobs.shutdown_grace_s)
        with self._lock:
            self._closed = True
            services = self.services
        if services is not None:
            services.close()
        elif not finished:
            log.warning("stopping before the services finished loading")


def create_app(settings: Settings | None = None, components: Components | None = None) -> FastAPI:
    """Create the application; models load in the lifespan, not here."""
    settings = settings or Settings()
    configure_logging(settings.server.log_level)
    keys = KeyRing.from_settings(settings.security)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for warning in open_access_warnings(keys, settings.server.host):
            log.warning(warning)
        tracing = start_tracing(settings.tracing)
        loader = Loader(settings, components, metrics)
        app.state.loader = loader
        loader.start()
        try:
            yield
        finally:
            loader.close()
            if tracing is not None:
                tracing.close()

    app = FastAPI(
        title="ragserver",
        version=API_VERSION,
        description="Ask questions of your own documents; answers cite their sources.",
        lifespan=lifespan,
        telemetry=FASTAPI_TELEMETRY,
        docs_url=None,  # served from local files by install_docs, not from a CDN
        redoc_url=None,
    )
    install_docs(app)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.keys = keys
    register_error_handlers(app)
    install_middleware(app, settings, metrics, keys)
    app.include_router(health.router)
    app.include_router(metrics_router)
    routers = (
        collections,
        documents,
        jobs,
        search,
        answers,
        conversations,
        prompts,
        openai_compat,
        embeddings,
    )
    for module in routers:
        app.include_router(module.router, prefix="/v1", responses=ACCESS_RESPONSES)
    if settings.server.ui:
        install_ui(app)
    return app
