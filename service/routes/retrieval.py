"""POST /similarity (TEI, huggingface_hub's sentence_similarity), /tokenize and /decode."""

from __future__ import annotations

import time

import numpy as np
from fastapi import APIRouter, Request, Response

from service.engine.model_engine import EmbedOptions
from service.engine.usage import Usage
from service.errors import EmptyInputError
from service.http.deps import Serving, ServingDep
from service.http.openapi import ERROR_RESPONSES
from service.http.retrieval_schemas import DecodeRequest, SimilarityRequest, Token, TokenizeRequest
from service.http.schemas import check_inputs
from service.routes.common import InferenceCall, json_response, label_model, usage_headers

router = APIRouter(tags=["retrieval"])


async def similarity_response(body: SimilarityRequest, request: Request, serving: Serving) -> Response:
    """Cosine similarity of the source sentence to each sentence (one embedding call for all)."""
    sentences = [body.inputs.source_sentence, *body.inputs.sentences]
    call = InferenceCall.begin(request, serving, sentences, body.model, "embed")
    parameters = body.parameters
    prompt_name = parameters.prompt_name if parameters is not None else None
    options = EmbedOptions(
        truncate=parameters.truncate if parameters is not None else True,
        direction=parameters.truncation_direction if parameters is not None else "right",
        cache=call.cache,
        prompt=call.engine.prompt_text(prompt_name, body.prompt),
    )
    result = await call.run(call.engine.embed(call.strings, options))
    vectors = result.vectors
    return call.respond(result.usage, (vectors[1:] @ vectors[0]).astype(np.float32))


@router.post("/similarity", response_model=list[float], responses=ERROR_RESPONSES)
async def similarity(body: SimilarityRequest, request: Request, serving: ServingDep) -> Response:
    """Cosine similarity of ``source_sentence`` to each of ``sentences``, in their order."""
    return await similarity_response(body, request, serving)


@router.post("/tokenize", response_model=list[list[Token]], responses=ERROR_RESPONSES)
async def tokenize(body: TokenizeRequest, request: Request, serving: ServingDep) -> Response:
    """Per input its tokens (ids as the model's tokenizer gives them, after the prompt, if any)."""
    started = time.perf_counter()
    texts = [text for text in check_inputs(body.inputs, serving.limits) if isinstance(text, str)]
    engine = serving.registry.get(body.model, "any")
    label_model(request, engine.name)
    prompt = engine.prompt_text(body.prompt_name, body.prompt)
    texts = [prompt + text for text in texts]
    rows = await engine.tokenizer_work(
        engine.tokenizer.tokens, texts, body.add_special_tokens, chars=sum(map(len, texts))
    )
    return json_response([[token.__dict__ for token in row] for row in rows], usage_headers(Usage(), started))


@router.post("/decode", response_model=list[str], responses=ERROR_RESPONSES)
async def decode(body: DecodeRequest, request: Request, serving: ServingDep) -> Response:
    """The text of each id list (one list of ids gets a one-item answer)."""
    started = time.perf_counter()
    ids = body.ids
    batch: list[list[int]] = [ids] if not ids or isinstance(ids[0], int) else ids  # type: ignore[list-item]
    if not all(batch):
        raise EmptyInputError("ids is empty")
    check_inputs(["ids"] * len(batch), serving.limits)
    engine = serving.registry.get(body.model, "any")
    label_model(request, engine.name)
    texts = await engine.tokenizer_work(
        engine.tokenizer.decode, batch, body.skip_special_tokens, chars=sum(map(len, batch))
    )
    return json_response(texts, usage_headers(Usage(), started))
