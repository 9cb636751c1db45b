"""POST /embed: TEI-compatible embeddings."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from service.engine.model_engine import EmbedOptions
from service.http.deps import LimitsDep, MetricsDep, RegistryDep
from service.http.schemas import EmbedRequest, check_inputs
from service.routes.common import (
    ERROR_RESPONSES,
    cache_policy,
    json_response,
    label_model,
    record_usage,
    unless_disconnected,
    usage_headers,
)

router = APIRouter(tags=["embeddings"])


@router.post("/embed", response_model=list[list[float]], responses=ERROR_RESPONSES)
async def embed(
    body: EmbedRequest,
    request: Request,
    registry: RegistryDep,
    metrics: MetricsDep,
    limits: LimitsDep,
) -> Response:
    """Embed one text or a list of texts; returns one vector per input, in input order."""
    started = time.perf_counter()
    texts = check_inputs(body.inputs, limits)
    engine = registry.get(body.model, "embed")
    label_model(request, engine.name)
    options = EmbedOptions(
        cache=cache_policy(request),
        normalize=body.normalize,
        truncate=body.truncate,
        direction=body.truncation_direction,
        dimensions=body.dimensions,
    )
    result = await unless_disconnected(request, engine.embed(texts, options))
    record_usage(metrics, engine.name, result.usage)
    return json_response(result.vectors, usage_headers(result.usage, started))
