"""int8 ONNX graphs with a measured guardrail: load-time quantization, and the core of the recipe.

Every weight matrix of the exported float32 graph is quantized per output channel (int8 weights,
activations quantized per batch at run time: ONNX Runtime's dynamic quantization, which uses the CPU's
VNNI int8 dot products). PyTorch's dynamic int8 quantizes per tensor and loses too much on MiniLM (cosine
to float32 as low as 0.90); per-channel keeps most of it. What is left is measured: when the quantized
model drifts past the targets on calibration sentences, the matrices whose quantization alone moves the
output most stay in float32, one at a time, until the targets hold. The server quantizes at load time on
the built-in sample (:func:`cached_int8`); the offline recipe (:mod:`models.training.quantize`) on STS-B dev.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from models.runtime.errors import ModelLoadError
from models.runtime.folders import ModelDescription
from models.runtime.inference import text_rows
from models.runtime.onnx import OnnxBackend
from models.runtime.postprocess import comparable, cosine_drift
from models.runtime.sample import SAMPLE_TEXTS
from models.runtime.tokenization import TextTokenizer

logger = logging.getLogger(__name__)


def _graph_rows(path: Path, tokenizer: TextTokenizer, texts: list[str], threads: int) -> np.ndarray:
    """Rows of the ONNX graph at ``path`` for ``texts`` (a throwaway session per trial graph)."""
    return text_rows(OnnxBackend(path, threads), tokenizer, texts)


@dataclass(frozen=True)
class Int8Targets:
    """Drift allowed between the int8 graph and float32 on the calibration sentences."""

    min_mean_cosine: float = 0.995
    min_cosine: float = 0.98
    max_float_fraction: float = 0.5

    def met(self, drift: tuple[float, float]) -> bool:
        """Whether ``(min, mean)`` cosine meets the targets."""
        return drift[0] >= self.min_cosine and drift[1] >= self.min_mean_cosine


def keep_float_search(
    candidates: list[str],
    drift_with: Callable[[list[str]], tuple[float, float]],
    targets: Int8Targets,
    progress: bool = False,
) -> tuple[list[str], dict[str, float], tuple[float, float]]:
    """The guardrail of every int8 recipe: when quantizing all ``candidates`` misses ``targets``, measure
    each one's sensitivity (the mean cosine lost when it alone is quantized), then keep the most sensitive
    in higher precision, one at a time, until the targets hold. ``drift_with(keep)`` returns the
    ``(min, mean)`` cosine with the ``keep`` candidates left unquantized. Returns the kept candidates,
    the sensitivities and the final drift."""
    drift = drift_with([])
    sensitivity: dict[str, float] = {}
    keep: list[str] = []
    if targets.met(drift):
        return keep, sensitivity, drift
    for name in tqdm(candidates, desc="int8 sensitivity", disable=not progress):
        alone = drift_with([other for other in candidates if other != name])
        sensitivity[name] = round(1 - alone[1], 6)
    limit = int(len(candidates) * targets.max_float_fraction)
    for name in sorted(sensitivity, key=sensitivity.__getitem__, reverse=True)[:limit]:
        keep.append(name)
        drift = drift_with(keep)
        if targets.met(drift):
            break
    return keep, sensitivity, drift


def weight_matmuls(model_path: Path) -> list[str]:
    """Names of the MatMul nodes whose right operand is a weight (an initializer)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return [node.name for node in graph.node if node.op_type == "MatMul" and node.input[1] in weights]


class _QuietQuantizer(logging.Filter):
    """Drops the quantizer's per-tensor chatter, which it logs on the root logger: INFO lines and a
    "consider pre-processing" WARNING repeated for every trial quantization (our graphs are already
    optimized by the exporter, so the advice does not apply)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname


def quantize_file(source: Path, target: Path, keep_float: list[str]) -> None:
    """Dynamic int8 quantization of ``source``'s weight MatMuls (per channel), except ``keep_float``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = _QuietQuantizer()
    logging.getLogger().addFilter(quiet)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_float,
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        logging.getLogger().removeFilter(quiet)


def build_int8(
    fp32: Path,
    target: Path,
    tokenizer: TextTokenizer,
    texts: list[str],
    targets: Int8Targets,
    task: str,
    threads: int = 2,
    progress: bool = False,
) -> dict[str, Any]:
    """Quantize ``fp32`` into ``target``; the most sensitive matrices stay float32 until ``targets``
    hold (drift measured on what :func:`~models.runtime.postprocess.comparable` compares for ``task``)."""
    reference = comparable(_graph_rows(fp32, tokenizer, texts, threads), task)
    candidates = weight_matmuls(fp32)
    with tempfile.TemporaryDirectory() as scratch:
        trial = Path(scratch) / "trial.onnx"

        def drift_with(keep_float: list[str]) -> tuple[float, float]:
            quantize_file(fp32, trial, keep_float)
            return cosine_drift(reference, comparable(_graph_rows(trial, tokenizer, texts, threads), task))

        keep_float, sensitivity, drift = keep_float_search(candidates, drift_with, targets, progress)
    quantize_file(fp32, target, keep_float)
    return {
        "method": "onnxruntime dynamic int8, per-channel weights, uint8 activations",
        "matmuls": len(candidates),
        "kept_float32": keep_float,
        "sensitivity": sensitivity,
        "calibration": {
            "texts": len(texts),
            "min_cosine": round(drift[0], 6),
            "mean_cosine": round(drift[1], 6),
        },
        "targets_met": targets.met(drift),
    }


def cached_int8(description: ModelDescription, fp32: Path, threads: int = 2) -> Path:
    """The int8 graph of an exported model, built once next to it (load-time quantization)."""
    target = fp32.with_name(f"{fp32.stem}-int8.onnx")
    if target.is_file():
        return target
    if importlib.util.find_spec("onnx") is None:  # a serving install: the quantizer needs the onnx package
        raise ModelLoadError(
            f"{description.path}: load-time int8 quantization needs the onnx package "
            "(pip install 'bertserve[int8]'), or serve an int8 variant folder"
        )
    logger.info("quantizing %s to int8 (once per model fingerprint)", description.path)
    tokenizer = TextTokenizer.from_folder(description.path, description.max_input_tokens)
    partial = target.with_suffix(".partial")
    texts = list(SAMPLE_TEXTS)
    report = build_int8(fp32, partial, tokenizer, texts, Int8Targets(), description.task, threads)
    logger.info(
        "int8 drift on the built-in sample: %s; kept float32: %s",
        report["calibration"],
        report["kept_float32"],
    )
    partial.replace(target)
    return target
