"""POST /classify (and /predict, its TEI name): sequence classification."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from service.engine.model_engine import ClassifyOptions
from service.http.deps import LimitsDep, MetricsDep, RegistryDep
from service.http.schemas import ClassifyRequest, LabelScore, check_inputs
from service.routes.common import (
    ERROR_RESPONSES,
    cache_policy,
    json_response,
    label_model,
    record_usage,
    unless_disconnected,
    usage_headers,
)

router = APIRouter(tags=["classification"])


async def _classify(
    body: ClassifyRequest,
    request: Request,
    registry: RegistryDep,
    metrics: MetricsDep,
    limits: LimitsDep,
    flatten_single: bool,
) -> Response:
    started = time.perf_counter()
    texts = check_inputs(body.inputs, limits)
    engine = registry.get(body.model, "classify")
    label_model(request, engine.name)
    options = ClassifyOptions(
        cache=cache_policy(request),
        raw_scores=body.raw_scores,
        top_k=body.top_k,
        truncate=body.truncate,
        direction=body.truncation_direction,
    )
    result = await unless_disconnected(request, engine.classify(texts, options))
    record_usage(metrics, engine.name, result.usage)
    ranked = [[{"label": label, "score": score} for label, score in row] for row in result.ranked]
    # TEI's /predict answers a single string with a flat list; /classify always nests.
    content = ranked[0] if flatten_single and isinstance(body.inputs, str) else ranked
    return json_response(content, usage_headers(result.usage, started))


@router.post("/classify", response_model=list[list[LabelScore]], responses=ERROR_RESPONSES)
async def classify(
    body: ClassifyRequest,
    request: Request,
    registry: RegistryDep,
    metrics: MetricsDep,
    limits: LimitsDep,
) -> Response:
    """Classify each input; per input a list of labels with scores, highest first."""
    return await _classify(body, request, registry, metrics, limits, flatten_single=False)


@router.post(
    "/predict",
    response_model=list[list[LabelScore]] | list[LabelScore],
    responses=ERROR_RESPONSES,
)
async def predict(
    body: ClassifyRequest,
    request: Request,
    registry: RegistryDep,
    metrics: MetricsDep,
    limits: LimitsDep,
) -> Response:
    """TEI's name for /classify; a single string input gets a flat list, as TEI does."""
    return await _classify(body, request, registry, metrics, limits, flatten_single=True)
