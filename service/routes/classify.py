"""POST /classify (and /predict, its TEI name): sequence classification."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.engine.model_engine import ClassifyOptions
from service.http.deps import Serving, ServingDep
from service.http.fast import FastRoute
from service.http.openapi import ERROR_RESPONSES
from service.http.schemas import ClassifyRequest, LabelScore
from service.routes.common import InferenceCall

router = APIRouter(tags=["classification"])


async def _classify(
    body: ClassifyRequest, request: Request, serving: Serving, flatten_single: bool
) -> Response:
    call = InferenceCall.begin(request, serving, body.inputs, body.model, "classify")
    options = ClassifyOptions(
        raw_scores=body.raw_scores,
        top_k=body.top_k,
        truncate=body.truncate,
        direction=body.truncation_direction,
        cache=call.cache,
    )
    result = await call.run(call.engine.classify(call.texts, options))
    ranked = [[{"label": label, "score": score} for label, score in row] for row in result.ranked]
    # TEI's /predict answers a single string with a flat list; /classify always nests.
    content = ranked[0] if flatten_single and isinstance(body.inputs, str) else ranked
    return call.respond(result.usage, content)


@router.post("/classify", response_model=list[list[LabelScore]], responses=ERROR_RESPONSES)
async def classify(body: ClassifyRequest, request: Request, serving: ServingDep) -> Response:
    """Classify each input; per input a list of labels with scores, highest first."""
    return await _classify(body, request, serving, flatten_single=False)


@router.post("/predict", response_model=list[list[LabelScore]] | list[LabelScore], responses=ERROR_RESPONSES)
async def predict(body: ClassifyRequest, request: Request, serving: ServingDep) -> Response:
    """TEI's name for /classify; a single string input gets a flat list, as TEI does."""
    return await _classify(body, request, serving, flatten_single=True)


#: Served by :class:`service.http.fast.FastRoutesMiddleware` (the routes above document them).
FAST_ROUTES = {
    "/classify": FastRoute(ClassifyRequest, classify),
    "/predict": FastRoute(ClassifyRequest, predict),
}
