"""How far a served variant's outputs are from its base model's, checked at start-up (warm-up or not).

A quantized, pruned or distilled variant is only as good as its distance from the model it replaces.
At start-up, when the base is available, both run the built-in sample (:mod:`models.runtime.sample`) and the
cosine similarity of matching outputs (embeddings, or class probabilities for classifiers) is reported
in ``/info`` and as a metric; a configured floor refuses to serve a variant that drifted too far.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.runtime.contract import EncoderBackend
from models.runtime.errors import ModelLoadError
from models.runtime.folders import ModelDescription, describe_model
from models.runtime.inference import text_rows
from models.runtime.postprocess import comparable, cosine_drift
from models.runtime.sample import SAMPLE_TEXTS
from models.runtime.tokenization import TextTokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Drift:
    """Cosine similarity between a model's outputs and its reference's, on the built-in sample."""

    reference: str
    min_cosine: float
    mean_cosine: float
    samples: int


def sample_rows(backend: EncoderBackend, tokenizer: TextTokenizer) -> np.ndarray:
    """The backend's rows for the built-in sample."""
    return text_rows(backend, tokenizer, SAMPLE_TEXTS, batch_size=len(SAMPLE_TEXTS))


def compare(reference: np.ndarray, rows: np.ndarray, what: str, task: str = "embed") -> Drift:
    """Row-wise cosine between ``rows`` and ``reference`` (see :func:`comparable`)."""
    low, mean = cosine_drift(comparable(reference, task), comparable(rows, task))
    return Drift(what, round(low, 6), round(mean, 6), len(rows))


@dataclass(frozen=True)
class OnnxReference:
    """Where a serving install without PyTorch finds float32 references: the exported graphs' cache."""

    cache_dir: Path
    threads: int = 1


def float32_reference(description: ModelDescription, onnx: OnnxReference | None = None) -> EncoderBackend:
    """The exact reference a served model is compared with: PyTorch float32 on CPU, or, on an install
    without PyTorch (the slim serving image), the model's float32 ONNX graph when it is exported."""
    try:
        from models.runtime.torch_backend import TorchBackend
    except ImportError as exc:
        if onnx is None:
            raise ModelLoadError(f"{description.path}: no float32 reference without PyTorch") from exc
        from models.runtime.factory import onnx_model_path
        from models.runtime.onnx import OnnxBackend

        return OnnxBackend(onnx_model_path(description, onnx.cache_dir), onnx.threads, "float32")
    return TorchBackend(description, "cpu", "float32")


def base_of(description: ModelDescription) -> ModelDescription | None:
    """The variant's base model, when its folder is here and still holds the same weights."""
    entry = (description.variant or {}).get("base") or {}
    path = entry.get("path")
    if not path or not Path(path).is_dir():
        return None
    try:
        base = describe_model(Path(path))
    except ModelLoadError as exc:
        logger.warning(
            "%s: base model %s cannot be read (%s); drift not checked", description.path, path, exc
        )
        return None
    if base.fingerprint != entry.get("fingerprint"):
        logger.warning(
            "%s: base model %s changed since the variant was built; drift not checked", description.path, path
        )
        return None
    return base


def variant_drift(
    description: ModelDescription,
    backend: EncoderBackend,
    tokenizer: TextTokenizer,
    onnx: OnnxReference | None = None,
) -> Drift | None:
    """Drift of a variant against its base (float32 on CPU), or None without a usable base."""
    base = base_of(description)
    if base is None:
        return None
    reference = float32_reference(base, onnx)
    rows = sample_rows(backend, tokenizer)
    return compare(sample_rows(reference, tokenizer), rows, f"base {base.path}", description.task)


def check_floor(name: str, drift: Drift | None, floor: float | None) -> None:
    """Refuse (ModelLoadError) a model whose drift is below ``floor``, or cannot be measured."""
    if floor is None:
        return
    if drift is None:
        raise ModelLoadError(
            f"model {name!r}: min_cosine {floor} is set but there is no base to compare with"
        )
    if drift.min_cosine < floor:
        raise ModelLoadError(
            f"model {name!r}: drift against {drift.reference} is too large "
            f"(min cosine {drift.min_cosine:.4f} < floor {floor})"
        )


def measure_drift(
    description: ModelDescription,
    backend: EncoderBackend,
    tokenizer: TextTokenizer,
    quantized_at_load: bool,
    onnx: OnnxReference | None = None,
) -> Drift | None:
    """Drift against float32 of the same model (load-time quantization) or against a variant's base.
    ``onnx``: where float32 graphs are cached, the reference when PyTorch is not installed."""
    if quantized_at_load:
        reference = float32_reference(description, onnx)
        rows = sample_rows(backend, tokenizer)
        return compare(sample_rows(reference, tokenizer), rows, "float32", description.task)
    if description.variant:
        return variant_drift(description, backend, tokenizer, onnx)
    return None
