"""Helpers shared by the inference routes: fast JSON, usage headers and metrics."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response

from service.engine.model_engine import Usage
from service.http.schemas import ErrorResponse
from service.metrics import Metrics

#: OpenAPI documentation of the error responses every inference route can give.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "Empty input, or a model of the wrong task",
        404: "Unknown model",
        413: "Too many inputs, characters or body bytes",
        422: "Invalid request, or an input over the token limit with truncate false",
        503: "Models still loading",
    }.items()
}


def json_response(content: Any, headers: dict[str, str] | None = None) -> Response:
    """Serialise with compact separators (large float arrays dominate response time)."""
    body = json.dumps(content, separators=(",", ":"), allow_nan=False)
    return Response(body, media_type="application/json", headers=headers)


def usage_headers(usage: Usage) -> dict[str, str]:
    """Timing and cost headers of a served request."""
    return {
        "x-compute-tokens": str(usage.tokens),
        "x-tokenization-time": f"{usage.tokenize_s * 1000:.3f}",
        "x-inference-time": f"{usage.inference_s * 1000:.3f}",
    }


def record_usage(metrics: Metrics, model: str, usage: Usage) -> None:
    """Observe a served request in the model-level metrics."""
    metrics.tokenization_duration.labels(model).observe(usage.tokenize_s)
    metrics.inference_duration.labels(model).observe(usage.inference_s)
    histogram = metrics.input_tokens.labels(model)
    for tokens in usage.item_tokens:
        histogram.observe(tokens)
    if usage.truncated:
        metrics.truncated_inputs.labels(model).inc(usage.truncated)


def label_model(request: Request, model: str) -> None:
    """Name the model in the request state, for the request metrics."""
    request.state.model = model
