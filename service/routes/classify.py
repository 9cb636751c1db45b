"""POST /classify and /predict (TEI's name): sequence classification of texts and text pairs."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from models.runtime.types import ModelInput
from service.engine.model_engine import ClassifyOptions
from service.http.deps import Serving, ServingDep
from service.http.openapi import ERROR_RESPONSES
from service.http.schemas import ClassifyRequest, LabelScore, PredictRequest
from service.routes.common import InferenceCall

router = APIRouter(tags=["classification"])


def _model_input(item: str | list[str]) -> ModelInput:
    """A text, or a pair given as a two-item list (a one-item list is one text, as TEI reads it)."""
    if isinstance(item, str):
        return item
    return item[0] if len(item) == 1 else (item[0], item[1])


async def _classify(
    body: ClassifyRequest, request: Request, serving: Serving, inputs: list[ModelInput], flatten: bool
) -> Response:
    call = InferenceCall.begin(request, serving, inputs, body.model, "classify")
    options = ClassifyOptions(
        raw_scores=body.raw_scores,
        top_k=body.top_k,
        truncate=body.truncate,
        direction=body.truncation_direction,
        cache=call.cache,
    )
    result = await call.run(call.engine.classify(call.texts, options))
    ranked = [[{"label": label, "score": score} for label, score in row] for row in result.ranked]
    return call.respond(result.usage, ranked[0] if flatten else ranked)


@router.post("/classify", response_model=list[list[LabelScore]], responses=ERROR_RESPONSES)
async def classify(body: ClassifyRequest, request: Request, serving: ServingDep) -> Response:
    """Classify each input (a text or an ``[a, b]`` pair); per input a list of labels with scores,
    highest first."""
    items = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    return await _classify(body, request, serving, [_model_input(item) for item in items], flatten=False)


@router.post("/predict", response_model=list[list[LabelScore]] | list[LabelScore], responses=ERROR_RESPONSES)
async def predict(body: PredictRequest, request: Request, serving: ServingDep) -> Response:
    """TEI's classification: a text or one sequence (``["a"]``, or the pair ``["a", "b"]``) gets a flat
    list; a batch of sequences (``[["a"], ["premise", "hypothesis"]]``) gets one list per sequence."""
    inputs = body.inputs
    batch: list[str | list[str]]
    if isinstance(inputs, str):
        batch, single = [inputs], True
    elif inputs and all(isinstance(item, str) for item in inputs):
        batch, single = [[str(item) for item in inputs]], True  # one sequence: a text or a pair
    else:
        batch, single = [item for item in inputs if isinstance(item, list)], False
    return await _classify(body, request, serving, [_model_input(item) for item in batch], flatten=single)
