"""Request and response schemas, and the request limits they enforce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from models.runtime.types import Direction as TruncationDirection
from service.errors import EmptyInputError, PayloadTooLargeError

#: Request bodies are strict JSON: no "true" for a boolean, no 5.0 or true for an integer.
STRICT = ConfigDict(strict=True)


def _tei_direction(value: object) -> object:
    # TEI's own clients send "Right" / "Left"; exactly those two spellings are accepted as well.
    return value.lower() if value in ("Right", "Left") else value


def _encodable(value: str) -> str:
    """Refuse strings that hold unpaired UTF-16 surrogates (valid JSON escapes, but no text)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text holds an unpaired surrogate (not valid Unicode)") from None
    return value


#: A string from a client: any Unicode text, but never unpaired surrogates (they break the tokenizer).
Text = Annotated[str, AfterValidator(_encodable)]
Direction = Annotated[
    TruncationDirection,
    BeforeValidator(_tei_direction),
    WithJsonSchema({"type": "string", "enum": ["right", "left", "Right", "Left"]}),
]
ModelName = Annotated[Text, Field(min_length=1, max_length=256)]
Inputs = Text | list[Text]


@dataclass(frozen=True)
class InputLimits:
    """Per-request limits from the settings (counted before any tokenization)."""

    max_inputs: int
    max_chars: int
    max_total_chars: int


def check_inputs(inputs: str | list[str], limits: InputLimits) -> list[str]:
    """Normalise ``inputs`` to a list and enforce the request limits (400 empty, 413 too large)."""
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not texts:
        raise EmptyInputError("inputs is empty")
    if len(texts) > limits.max_inputs:
        raise PayloadTooLargeError(f"{len(texts)} inputs in one request; the limit is {limits.max_inputs}")
    total = 0
    for index, text in enumerate(texts):
        if not text:
            raise EmptyInputError(f"input {index} is an empty string")
        if len(text) > limits.max_chars:
            raise PayloadTooLargeError(
                f"input {index} has {len(text)} characters; the limit is {limits.max_chars}"
            )
        total += len(text)
    if total > limits.max_total_chars:
        raise PayloadTooLargeError(f"{total} characters in all inputs; the limit is {limits.max_total_chars}")
    return texts


class EmbedRequest(BaseModel):
    """POST /embed (TEI-compatible)."""

    model_config = STRICT

    inputs: Inputs = Field(description="One text or a list of texts.")
    normalize: bool = Field(True, description="L2-normalise each embedding.")
    truncate: bool = Field(True, description="Cut over-long inputs instead of refusing them.")
    truncation_direction: Direction = Field("right", description="Which end to cut.")
    dimensions: int | None = Field(
        None, ge=1, le=65536, description="Keep the first N dimensions (before normalising)."
    )
    model: ModelName | None = Field(None, description="Served model name; default: first embedder.")


class ClassifyRequest(BaseModel):
    """POST /classify and /predict (TEI-compatible)."""

    model_config = STRICT

    inputs: Inputs = Field(description="One text or a list of texts.")
    raw_scores: bool = Field(False, description="Return logits instead of softmax probabilities.")
    top_k: int | None = Field(None, ge=1, le=4096, description="Keep the K best labels per input.")
    truncate: bool = Field(True, description="Cut over-long inputs instead of refusing them.")
    truncation_direction: Direction = Field("right", description="Which end to cut.")
    model: ModelName | None = Field(None, description="Served model name; default: first classifier.")


class LabelScore(BaseModel):
    """One label of a classification."""

    label: str
    score: float


class OpenAIEmbeddingRequest(BaseModel):
    """POST /v1/embeddings (OpenAI embeddings API)."""

    model_config = STRICT

    input: Inputs = Field(description="One text or a list of texts.")
    model: ModelName = Field(description="Served model name.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: JSON numbers; base64: little-endian float32 bytes."
    )
    dimensions: int | None = Field(None, ge=1, le=65536, description="Keep the first N dimensions.")
    user: Text | None = Field(None, max_length=256, description="Ignored (OpenAI compatibility).")


class OpenAIEmbedding(BaseModel):
    """One embedding in an OpenAI response."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class OpenAIUsage(BaseModel):
    """Token counts of an OpenAI request."""

    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingResponse(BaseModel):
    """Response of POST /v1/embeddings."""

    object: Literal["list"] = "list"
    data: list[OpenAIEmbedding]
    model: str
    usage: OpenAIUsage


class ErrorResponse(BaseModel):
    """The error shape of every non-OpenAI route."""

    error: str
    error_type: str


class OpenAIErrorDetail(BaseModel):
    """OpenAI's error object."""

    message: str
    type: str
    param: str | None
    code: str


class OpenAIErrorResponse(BaseModel):
    """The error shape under /v1/ (OpenAI's)."""

    error: OpenAIErrorDetail


class DriftInfo(BaseModel):
    """Cosine similarity of a model's outputs to its reference on the built-in sample, at warm-up."""

    reference: str
    min_cosine: float
    mean_cosine: float
    samples: int


class ModelInfo(BaseModel):
    """One served model, as /info reports it."""

    name: str
    source: str
    fingerprint: str
    task: str
    model_type: str
    device: str
    dtype: str
    runtime: str
    max_input_tokens: int
    pooling: str | None
    hidden_size: int
    labels: list[str]
    load_seconds: float
    variant: str | None = None
    drift: DriftInfo | None = None


class InfoResponse(BaseModel):
    """Response of GET /info."""

    version: str
    ready: bool
    models: list[ModelInfo]
