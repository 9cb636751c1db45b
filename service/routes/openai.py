"""POST /v1/embeddings: the OpenAI embeddings API (works with the official ``openai`` client)."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request, Response

from service.engine.model_engine import EmbedOptions
from service.http.deps import ServingDep
from service.http.openapi import OPENAI_ERROR_RESPONSES
from service.http.schemas import OpenAIEmbeddingRequest, OpenAIEmbeddingResponse
from service.routes.common import InferenceCall

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/embeddings", response_model=OpenAIEmbeddingResponse, responses=OPENAI_ERROR_RESPONSES)
async def create_embeddings(body: OpenAIEmbeddingRequest, request: Request, serving: ServingDep) -> Response:
    """Embed ``input``; vectors are L2-normalised, as OpenAI's are."""
    call = InferenceCall.begin(request, serving, body.input, body.model, "embed")
    options = EmbedOptions(
        dimensions=body.dimensions,
        cache=call.cache,
        prompt=call.engine.prompt_text(body.prompt_name, body.prompt),
        long_inputs=body.long_inputs,
    )
    result = await call.run(call.engine.embed(call.strings, options))
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
        for index in range(len(call.texts))
    ]
    tokens = result.usage.input_tokens
    content = {
        "object": "list",
        "data": data,
        "model": call.engine.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return call.respond(result.usage, content)
