"""Reranking: POST /rerank (TEI), /v2/rerank (Cohere v2), /v1/rerank (Cohere v1 and Jina).

All three score each (query, document) pair with a cross-encoder (any served classifier with one label)
through the same engine call: the documents join the model's shared batches (a long list is spread over
several), and each pair's score is cached on its own. They differ only in their request and answer shapes.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import numpy as np
from fastapi import APIRouter, Request, Response

from service.engine.model_engine import RerankOptions
from service.engine.usage import Usage
from service.http.deps import Serving, ServingDep
from service.http.openapi import ERROR_RESPONSES
from service.http.retrieval_schemas import (
    CohereRerankRequest,
    CohereRerankResponse,
    RankedText,
    RerankRequest,
    RerankV1Request,
    RerankV1Response,
)
from service.http.schemas import check_inputs
from service.routes.common import InferenceCall

router = APIRouter(tags=["rerank"])

#: Cohere bills one search unit per query and up to 100 documents.
_DOCUMENTS_PER_SEARCH_UNIT = 100


@dataclass
class Ranking:
    """Scores of one rerank request, and the order to answer them in."""

    call: InferenceCall
    documents: list[str]
    scores: np.ndarray
    order: list[int]
    usage: Usage


async def _rank(
    request: Request,
    serving: Serving,
    body: RerankRequest | CohereRerankRequest | RerankV1Request,
    documents: list[str],
    options: RerankOptions,
    top_n: int | None = None,
    max_tokens_per_doc: int | None = None,
) -> Ranking:
    check_inputs(body.query, serving.limits)
    call = InferenceCall.begin(
        request, serving, documents, body.model, "rerank", serving.limits.max_documents
    )
    texts = documents
    if max_tokens_per_doc is not None:
        texts = call.engine.tokenizer.clip(documents, max_tokens_per_doc)
    options = RerankOptions(options.raw_scores, options.truncate, options.direction, call.cache)
    result = await call.run(call.engine.rerank(body.query, texts, options))
    order = np.argsort(-result.scores, kind="stable").tolist()
    return Ranking(call, documents, result.scores, order[:top_n], result.usage)


@router.post("/rerank", response_model=list[RankedText], responses=ERROR_RESPONSES)
async def rerank(body: RerankRequest, request: Request, serving: ServingDep) -> Response:
    """TEI's rerank: every text with its score, highest first (sigmoid of the logit unless raw_scores)."""
    options = RerankOptions(body.raw_scores, body.truncate, body.truncation_direction)
    ranking = await _rank(request, serving, body, body.texts, options)
    content = [
        {
            "index": i,
            "score": float(ranking.scores[i]),
            **({"text": body.texts[i]} if body.return_text else {}),
        }
        for i in ranking.order
    ]
    return ranking.call.respond(ranking.usage, content)


def _cohere_answer(ranking: Ranking, return_documents: bool) -> dict[str, object]:
    results = [
        {
            "index": i,
            "relevance_score": float(ranking.scores[i]),
            **({"document": {"text": ranking.documents[i]}} if return_documents else {}),
        }
        for i in ranking.order
    ]
    units = math.ceil(len(ranking.documents) / _DOCUMENTS_PER_SEARCH_UNIT)
    return {"id": str(uuid.uuid4()), "results": results, "meta": {"billed_units": {"search_units": units}}}


@router.post("/v2/rerank", response_model=CohereRerankResponse, responses=ERROR_RESPONSES)
async def rerank_v2(body: CohereRerankRequest, request: Request, serving: ServingDep) -> Response:
    """Cohere's v2 rerank (works with ``cohere.ClientV2(base_url=...).rerank``)."""
    ranking = await _rank(
        request, serving, body, body.documents, RerankOptions(), body.top_n, body.max_tokens_per_doc
    )
    return ranking.call.respond(ranking.usage, _cohere_answer(ranking, body.return_documents))


@router.post("/v1/rerank", response_model=RerankV1Response, responses=ERROR_RESPONSES)
async def rerank_v1(body: RerankV1Request, request: Request, serving: ServingDep) -> Response:
    """Cohere v1 and Jina rerank: documents as strings or {text}; Jina's model and usage fields too."""
    documents = [doc if isinstance(doc, str) else doc.text for doc in body.documents]
    ranking = await _rank(request, serving, body, documents, RerankOptions(), body.top_n)
    tokens = ranking.usage.input_tokens
    content = {
        **_cohere_answer(ranking, body.return_documents),
        "model": ranking.call.engine.name,
        "usage": {"total_tokens": tokens, "prompt_tokens": tokens},
    }
    return ranking.call.respond(ranking.usage, content)
