"""POST /v1/embeddings: the OpenAI embeddings API (works with the official ``openai`` client)."""

from __future__ import annotations

import base64
import time

from fastapi import APIRouter, Request, Response

from service.engine.model_engine import EmbedOptions
from service.http.deps import LimitsDep, MetricsDep, RegistryDep
from service.http.schemas import OpenAIEmbeddingRequest, OpenAIEmbeddingResponse, check_inputs
from service.routes.common import (
    cache_policy,
    json_response,
    label_model,
    record_usage,
    unless_disconnected,
    usage_headers,
)

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/embeddings", response_model=OpenAIEmbeddingResponse)
async def create_embeddings(
    body: OpenAIEmbeddingRequest,
    request: Request,
    registry: RegistryDep,
    metrics: MetricsDep,
    limits: LimitsDep,
) -> Response:
    """Embed ``input``; vectors are L2-normalised, as OpenAI's are."""
    started = time.perf_counter()
    texts = check_inputs(body.input, limits)
    engine = registry.get(body.model, "embed")
    label_model(request, engine.name)
    result = await unless_disconnected(
        request, engine.embed(texts, EmbedOptions(dimensions=body.dimensions, cache=cache_policy(request)))
    )
    record_usage(metrics, engine.name, result.usage)
    vectors = result.vectors
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": (
                base64.b64encode(vectors[index].astype("<f4").tobytes()).decode("ascii")
                if body.encoding_format == "base64"
                else vectors[index]
            ),
        }
        for index in range(len(texts))
    ]
    tokens = result.usage.input_tokens
    content = {
        "object": "list",
        "data": data,
        "model": engine.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json_response(content, usage_headers(result.usage, started))
