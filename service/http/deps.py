"""FastAPI dependencies: typed access to the objects ``create_app`` puts on ``app.state``.

All are ``async def``: FastAPI runs plain ``def`` dependencies in a worker thread, a hop per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.engine.registry import ModelRegistry
from service.http.schemas import InputLimits
from service.metrics import Metrics
from service.settings import Settings


async def get_registry(request: Request) -> ModelRegistry:
    """The app's model registry."""
    registry: ModelRegistry = request.app.state.registry
    return registry


async def get_metrics(request: Request) -> Metrics:
    """The app's metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


@dataclass(frozen=True)
class Serving:
    """What an inference route needs, resolved as one dependency (each dependency costs per request)."""

    registry: ModelRegistry
    metrics: Metrics
    limits: InputLimits


async def get_serving(request: Request) -> Serving:
    """Registry, metrics and input limits of the app."""
    state = request.app.state
    settings: Settings = state.settings
    limits = InputLimits(
        settings.max_client_batch_size,
        settings.max_input_chars,
        settings.max_total_chars,
        settings.max_rerank_documents,
    )
    return Serving(state.registry, state.metrics, limits)


ServingDep = Annotated[Serving, Depends(get_serving)]
