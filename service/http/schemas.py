"""Request and response schemas, and the request limits they enforce."""

from __future__ import annotations

from collections.abc import Sequence as Sequence_
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from models.runtime.types import Direction as TruncationDirection
from models.runtime.types import ModelInput
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
#: A text pair ``[a, b]`` (query and document, premise and hypothesis).
Pair = Annotated[list[Text], Field(min_length=2, max_length=2)]
#: TEI's sequence of /predict: one text ``["a"]`` or a pair ``["a", "b"]``.
Sequence = Annotated[list[Text], Field(min_length=1, max_length=2)]
PromptName = Annotated[Text, Field(min_length=1, max_length=128)]
PromptText = Annotated[Text, Field(max_length=4096)]
LongInputs = Literal["truncate", "error", "chunk"]


@dataclass(frozen=True)
class InputLimits:
    """Per-request limits from the settings (counted before any tokenization)."""

    max_inputs: int
    max_chars: int
    max_total_chars: int
    max_documents: int = 1000


def check_inputs(
    inputs: str | Sequence_[ModelInput], limits: InputLimits, max_inputs: int | None = None
) -> list[ModelInput]:
    """Normalise ``inputs`` (texts or pairs) to a list and enforce the request limits (400 empty, 413
    too large); ``max_inputs`` overrides the per-request input count (rerank's document limit)."""
    texts: list[ModelInput] = [inputs] if isinstance(inputs, str) else list(inputs)
    if not texts:
        raise EmptyInputError("inputs is empty")
    most = limits.max_inputs if max_inputs is None else max_inputs
    if len(texts) > most:
        raise PayloadTooLargeError(f"{len(texts)} inputs in one request; the limit is {most}")
    total = 0
    for index, item in enumerate(texts):
        for text in (item,) if isinstance(item, str) else item:
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
    prompt_name: PromptName | None = Field(None, description="A prompt of the model, put before each input.")
    prompt: PromptText | None = Field(None, description="A prompt text put before each input.")
    long_inputs: LongInputs | None = Field(
        None,
        description="Inputs over the token limit: truncate, error (422), or chunk (windows averaged); "
        "default: the model's setting (truncate: false means error).",
    )
    model: ModelName | None = Field(None, description="Served model name; default: first embedder.")


class ClassifyRequest(BaseModel):
    """POST /classify: texts or text pairs."""

    model_config = STRICT

    inputs: Text | list[Text | Pair] = Field(description="One text, or a list of texts and [a, b] pairs.")
    raw_scores: bool = Field(False, description="Return logits instead of softmax probabilities.")
    top_k: int | None = Field(None, ge=1, le=4096, description="Keep the K best labels per input.")
    truncate: bool = Field(True, description="Cut over-long inputs instead of refusing them.")
    truncation_direction: Direction = Field("right", description="Which end to cut.")
    model: ModelName | None = Field(None, description="Served model name; default: first classifier.")


class PredictRequest(ClassifyRequest):
    """POST /predict, exactly as TEI: a text, one sequence (``["a"]`` or the pair ``["a", "b"]``), or a
    batch of sequences (``[["a"], ["premise", "hypothesis"]]``)."""

    inputs: Text | Sequence | list[Sequence] = Field(  # type: ignore[assignment]
        description="A text, a sequence [a] or pair [a, b], or a list of sequences."
    )


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
    prompt_name: PromptName | None = Field(None, description="A prompt of the model, put before each input.")
    prompt: PromptText | None = Field(None, description="A prompt text put before each input.")
    long_inputs: LongInputs | None = Field(None, description="As on /embed.")
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
    reason: str = Field("", description="Why this runtime and dtype (dtype auto: what it found).")
    streams: int = Field(1, description="Batches the model runs at once (one worker thread each).")
    lone_all_threads: bool = Field(
        False,
        description="Whether a batch that runs alone (nothing else to do) gets every inference thread, "
        "not its stream's share (the lone_batch_all_threads setting, ONNX Runtime on CPU).",
    )
    batch_length_ratio: float = Field(
        2.0, description="A batch's longest input has at most this many times the tokens of its shortest."
    )
    max_input_tokens: int
    pooling: str | None
    hidden_size: int
    labels: list[str]
    load_seconds: float
    variant: str | None = None
    drift: DriftInfo | None = None
    rerank_with: str | None = Field(
        None, description="A reranker's partner embedder, whose cosine is blended into its scores."
    )
    rerank_weight: float | None = Field(None, description="The cross-encoder's share of a blended score.")


class InfoResponse(BaseModel):
    """Response of GET /info."""

    version: str
    ready: bool
    models: list[ModelInfo]
