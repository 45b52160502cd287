"""The FastAPI application: ``create_app(settings)`` and its lifespan."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.errors import register_error_handlers
from app.routers import collections, documents, health, jobs, search
from app.services.container import Components, Services, build_services
from app.settings import Settings

log = logging.getLogger(__name__)
API_VERSION = "0.1.0"


class Loader:
    """Builds the services on a background thread so /healthz answers at once.

    ``/readyz`` is 503 until ``services`` is set; /v1 routes answer 503 meanwhile.
    """

    def __init__(self, settings: Settings, components: Components | None) -> None:
        self.settings = settings
        self.components = components
        self.services: Services | None = None
        self.error: str | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._load, name="loader", daemon=True)

    def start(self) -> None:
        """Start loading in the background."""
        self._thread.start()

    def _load(self) -> None:
        try:
            self.services = build_services(self.settings, self.components)
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
        """Wait for loading to end, then close what was built."""
        self.done.wait()
        if self.services is not None:
            self.services.close()


def create_app(settings: Settings | None = None, components: Components | None = None) -> FastAPI:
    """Create the application; models load in the lifespan, not here."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = Loader(settings, components)
        app.state.loader = loader
        loader.start()
        try:
            yield
        finally:
            loader.close()

    app = FastAPI(
        title="ragserver",
        version=API_VERSION,
        description="Ask questions of your own documents; answers cite their sources.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    register_error_handlers(app)
    app.include_router(health.router)
    for module in (collections, documents, jobs, search):
        app.include_router(module.router, prefix="/v1")
    return app
