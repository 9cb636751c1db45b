"""POST /embed: TEI-compatible embeddings."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.engine.model_engine import EmbedOptions
from service.http.deps import ServingDep
from service.http.openapi import ERROR_RESPONSES
from service.http.schemas import EmbedRequest
from service.routes.common import InferenceCall

router = APIRouter(tags=["embeddings"])


@router.post("/embed", response_model=list[list[float]], responses=ERROR_RESPONSES)
async def embed(body: EmbedRequest, request: Request, serving: ServingDep) -> Response:
    """Embed one text or a list of texts; returns one vector per input, in input order."""
    call = InferenceCall.begin(request, serving, body.inputs, body.model, "embed")
    options = EmbedOptions(
        normalize=body.normalize,
        truncate=body.truncate,
        direction=body.truncation_direction,
        dimensions=body.dimensions,
        cache=call.cache,
        prompt=call.engine.prompt_text(body.prompt_name, body.prompt),
        long_inputs=body.long_inputs,
    )
    result = await call.run(call.engine.embed(call.strings, options))
    return call.respond(result.usage, result.vectors)
