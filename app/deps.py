"""FastAPI dependencies, as ``Annotated`` aliases the routers use."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.metrics import Metrics
from app.security import Principal, principal_of
from app.services.container import Services
from app.settings import Settings
from core.errors import BackendUnavailable


def get_settings(request: Request) -> Settings:
    """Return the settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_services(request: Request) -> Services:
    """Return the loaded services, or answer 503 while models are still loading."""
    loader = request.app.state.loader
    if loader.services is None:
        if loader.error is not None:
            raise BackendUnavailable(f"start-up failed: {loader.error}")
        raise BackendUnavailable("the server is still loading its models; retry shortly")
    services: Services = loader.services
    return services


def get_metrics(request: Request) -> Metrics:
    """Return the app's metrics (its own Prometheus registry)."""
    metrics: Metrics = request.app.state.metrics
    return metrics


def get_principal(request: Request) -> Principal:
    """Return who is calling: the API key's scope, or anonymous when keys are off."""
    return principal_of(request)


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ServicesDep = Annotated[Services, Depends(get_services)]
