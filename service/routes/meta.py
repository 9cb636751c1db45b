"""Health, readiness, model information and Prometheus metrics."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from service import __version__
from service.http.deps import MetricsDep, RegistryDep
from service.http.openapi import META_RESPONSES
from service.http.schemas import DriftInfo, ErrorResponse, InfoResponse, ModelInfo

router = APIRouter(tags=["meta"])


class Status(BaseModel):
    """Answer of /health and /ready."""

    status: str


_READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    **META_RESPONSES,
    503: {
        "model": ErrorResponse,
        "description": "Not taking new work: models loading (not_ready) or failed (load_failed), shutting "
        "down (draining), model worker stuck (wedged), or queue saturated for a while (saturated)",
    },
}
_METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    **META_RESPONSES,
    200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
}


@router.get("/health", response_model=Status, responses=META_RESPONSES)
async def health() -> dict[str, str]:
    """Liveness: the process answers HTTP."""
    return {"status": "ok"}


@router.get("/ready", response_model=Status, responses=_READY_RESPONSES)
async def ready(registry: RegistryDep) -> JSONResponse:
    """Readiness: 200 while this replica should get requests (every model loaded and warmed up, not
    shutting down, no model stuck or saturated), else 503 with the reason in ``error_type``."""
    problem = registry.readiness()
    if problem is None:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"error": problem.message, "error_type": problem.error_type}, status_code=503)


@router.get("/info", response_model=InfoResponse, responses=META_RESPONSES)
async def info(registry: RegistryDep) -> InfoResponse:
    """Served models and their properties."""
    models = [
        ModelInfo(
            name=loaded.spec.name,
            source=loaded.spec.source,
            fingerprint=loaded.engine.description.fingerprint,
            task=loaded.engine.description.task,
            model_type=loaded.engine.description.model_type,
            device=loaded.device,
            dtype=loaded.dtype,
            runtime=loaded.runtime,
            reason=loaded.reason,
            streams=loaded.engine.batcher.workers,
            lone_all_threads=loaded.engine.backend.lone_all_threads,
            batch_length_ratio=loaded.engine.queue.limits.length_ratio,
            max_input_tokens=loaded.engine.description.max_input_tokens,
            pooling=loaded.engine.description.pooling if loaded.engine.task == "embed" else None,
            hidden_size=loaded.engine.description.hidden_size,
            labels=list(loaded.engine.description.labels),
            load_seconds=round(loaded.load_seconds, 3),
            variant=(loaded.engine.description.variant or {}).get("recipe"),
            drift=DriftInfo(**dataclasses.asdict(loaded.drift)) if loaded.drift else None,
            rerank_with=loaded.spec.rerank_with,
            rerank_weight=loaded.spec.rerank_weight if loaded.spec.rerank_with else None,
        )
        for loaded in registry.models
    ]
    return InfoResponse(version=__version__, ready=registry.ready, models=models)


@router.get("/metrics", response_class=Response, responses=_METRICS_RESPONSES)
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus exposition of every bertserve metric."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
