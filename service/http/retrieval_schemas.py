"""Request and response schemas of the retrieval routes: rerank (TEI, Cohere v2, Cohere v1 / Jina),
similarity, tokenize and decode. Shared field types and limits come from :mod:`service.http.schemas`."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from service.http.schemas import STRICT, Direction, ModelName, PromptName, PromptText, Text

TokenId = Annotated[int, Field(ge=0, le=2**31 - 1)]
#: The most top_n / max_tokens_per_doc a request may ask (larger values mean "all").
_BIG = 1_000_000


class RerankRequest(BaseModel):
    """POST /rerank (TEI)."""

    model_config = STRICT

    query: Text = Field(description="The query every text is scored against.")
    texts: list[Text] = Field(description="The texts (documents) to score.")
    raw_scores: bool = Field(False, description="Return logits instead of sigmoid relevances.")
    return_text: bool = Field(False, description="Echo each text in its result.")
    truncate: bool = Field(True, description="Cut over-long pairs instead of refusing them.")
    truncation_direction: Direction = Field("right", description="Which end to cut.")
    model: ModelName | None = Field(None, description="Served model name; default: first reranker.")


class RankedText(BaseModel):
    """One scored text of POST /rerank."""

    index: int
    score: float
    text: str | None = None


class CohereRerankRequest(BaseModel):
    """POST /v2/rerank (Cohere v2)."""

    model_config = STRICT

    model: ModelName | None = Field(None, description="Served model name; default: first reranker.")
    query: Text = Field(description="The query every document is scored against.")
    documents: list[Text] = Field(description="The documents to rank.")
    top_n: int | None = Field(None, ge=1, le=_BIG, description="Return the N most relevant only.")
    max_tokens_per_doc: int | None = Field(
        None, ge=1, le=_BIG, description="Cut each document to this many tokens (after the query's)."
    )
    return_documents: bool = Field(False, description="Echo each document in its result.")


class TextDocument(BaseModel):
    """A document given as an object (Cohere v1 and Jina)."""

    model_config = STRICT

    text: Text


class RerankV1Request(BaseModel):
    """POST /v1/rerank (Cohere v1 and Jina)."""

    model_config = STRICT

    model: ModelName | None = Field(None, description="Served model name; default: first reranker.")
    query: Text = Field(description="The query every document is scored against.")
    documents: list[Text | TextDocument] = Field(description="Documents as strings or {text} objects.")
    top_n: int | None = Field(None, ge=1, le=_BIG, description="Return the N most relevant only.")
    return_documents: bool = Field(False, description="Echo each document as {text} in its result.")
    max_chunks_per_doc: int | None = Field(None, ge=1, le=_BIG, description="Ignored (Cohere v1).")


class BilledUnits(BaseModel):
    """Cohere's billing: one search unit per query of up to 100 documents."""

    search_units: int


class RerankMeta(BaseModel):
    """Cohere's meta object."""

    billed_units: BilledUnits


class CohereResult(BaseModel):
    """One ranked document of a Cohere-shaped answer."""

    index: int
    relevance_score: float
    document: TextDocument | None = None


class CohereRerankResponse(BaseModel):
    """Response of POST /v2/rerank."""

    id: str
    results: list[CohereResult]
    meta: RerankMeta


class RerankUsage(BaseModel):
    """Jina's usage object."""

    total_tokens: int
    prompt_tokens: int


class RerankV1Response(CohereRerankResponse):
    """Response of POST /v1/rerank (Cohere v1 fields, plus Jina's model and usage)."""

    model: str
    usage: RerankUsage


class SimilarityInputs(BaseModel):
    """The sentences of a similarity request."""

    model_config = STRICT

    source_sentence: Text
    sentences: list[Text]


class SimilarityParameters(BaseModel):
    """TEI's similarity parameters."""

    model_config = STRICT

    truncate: bool = True
    truncation_direction: Direction = "right"
    prompt_name: PromptName | None = None


class SimilarityRequest(BaseModel):
    """POST /similarity (TEI, huggingface_hub's sentence_similarity)."""

    model_config = STRICT

    inputs: SimilarityInputs = Field(description="source_sentence and the sentences to compare it with.")
    parameters: SimilarityParameters | None = Field(None, description="truncate, direction, prompt_name.")
    prompt: PromptText | None = Field(None, description="A prompt text put before each sentence.")
    model: ModelName | None = Field(None, description="Served model name; default: first embedder.")


class TokenizeRequest(BaseModel):
    """POST /tokenize (TEI)."""

    model_config = STRICT

    inputs: Text | list[Text] = Field(description="One text or a list of texts.")
    add_special_tokens: bool = Field(True, description="Add the model's [CLS] / [SEP].")
    prompt_name: PromptName | None = Field(None, description="A prompt of the model, put before each input.")
    prompt: PromptText | None = Field(None, description="A prompt text put before each input.")
    model: ModelName | None = Field(None, description="Served model name; default: first model.")


class Token(BaseModel):
    """One token: its id, text, whether it is special, and its character span in the input."""

    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


class DecodeRequest(BaseModel):
    """POST /decode (TEI)."""

    model_config = STRICT

    ids: list[TokenId] | list[list[TokenId]] = Field(description="Token ids, or a list of id lists.")
    skip_special_tokens: bool = Field(True, description="Leave out [CLS], [SEP], [PAD].")
    model: ModelName | None = Field(None, description="Served model name; default: first model.")
