"""FastAPI dependencies: typed access to the objects ``create_app`` puts on ``app.state``.

All are ``async def``: FastAPI runs plain ``def`` dependencies in a worker thread, a hop per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.engine.registry import ModelRegistry
from service.http.schemas import InputLimits
from service.metrics import Metrics
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_registry(request: Request) -> ModelRegistry:
    """The app's model registry."""
    registry: ModelRegistry = request.app.state.registry
    return registry


async def get_metrics(request: Request) -> Metrics:
    """The app's metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_limits(settings: Annotated[Settings, Depends(get_settings)]) -> InputLimits:
    """Per-request input limits."""
    return InputLimits(settings.max_client_batch_size, settings.max_input_chars)


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
LimitsDep = Annotated[InputLimits, Depends(get_limits)]
