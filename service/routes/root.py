"""POST / and POST /invocations: the first served model's own route, as TEI binds them.

An embedder answers as /embed, a reranker (a classifier with one label) as /rerank, any other classifier
as /predict. ``huggingface_hub.InferenceClient(url)`` posts every task to the URL itself, so a body in the
sentence-similarity shape (``{"inputs": {"source_sentence", "sentences"}}``) is answered as /similarity.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from service.http.deps import Serving, ServingDep
from service.http.openapi import ERROR_RESPONSES
from service.http.retrieval_schemas import RankedText, RerankRequest, SimilarityRequest
from service.http.schemas import EmbedRequest, LabelScore, PredictRequest
from service.routes import classify, embed, rerank
from service.routes.retrieval import similarity_response

router = APIRouter(tags=["root"])

_ANSWERS = list[list[float]] | list[float] | list[list[LabelScore]] | list[LabelScore] | list[RankedText]


def _parse(model: type[BaseModel], raw: bytes) -> Any:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None


async def _first_models_route(request: Request, serving: Serving) -> Response:
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestValidationError([{"loc": ("body",), "msg": "not valid JSON"}]) from None
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if isinstance(inputs, dict) and "source_sentence" in inputs:
        return await similarity_response(_parse(SimilarityRequest, raw), request, serving)
    first = serving.registry.get(None, "any")
    if first.serves("embed"):
        return await embed.embed(_parse(EmbedRequest, raw), request, serving)
    if first.serves("rerank"):
        return await rerank.rerank(_parse(RerankRequest, raw), request, serving)
    return await classify.predict(_parse(PredictRequest, raw), request, serving)


_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/EmbedRequest"},
                        {"$ref": "#/components/schemas/PredictRequest"},
                        {"$ref": "#/components/schemas/RerankRequest"},
                        {"$ref": "#/components/schemas/SimilarityRequest"},
                    ]
                }
            }
        },
    }
}


@router.post("/", response_model=_ANSWERS, responses=ERROR_RESPONSES, openapi_extra=_BODY)
async def root(request: Request, serving: ServingDep) -> Response:
    """The first served model's route (/embed, /predict or /rerank), or /similarity for its body."""
    return await _first_models_route(request, serving)


@router.post("/invocations", response_model=_ANSWERS, responses=ERROR_RESPONSES, openapi_extra=_BODY)
async def invocations(request: Request, serving: ServingDep) -> Response:
    """SageMaker's name for POST /."""
    return await _first_models_route(request, serving)
