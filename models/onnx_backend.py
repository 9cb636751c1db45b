"""ONNX Runtime backend (CPU): the model exported once per fingerprint, then run without the GIL.

On CPU, ONNX Runtime runs all-MiniLM-L6-v2 several times faster than PyTorch eager, for single sentences
above all (eager PyTorch pays Python overhead per layer, holding the GIL that the event loop needs). The
export is a PyTorch module that includes pooling, so one call returns finished rows; it is written next to
a marker of the fingerprint and reused across restarts.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.errors import ModelLoadError
from models.loading import ModelDescription
from models.pooling import pool
from models.runtime import load_module, takes_token_types
from models.tokenization import ModelInputs

logger = logging.getLogger(__name__)

_OPSET = 17


class _Exportable(torch.nn.Module):
    """The encoder plus its pooling (or the classifier head) as one graph."""

    def __init__(self, model: torch.nn.Module, description: ModelDescription, token_types: bool) -> None:
        super().__init__()
        self.model = model
        self.task = description.task
        self.pooling = description.pooling
        self.token_types = token_types

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *rest: torch.Tensor
    ) -> torch.Tensor:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.token_types:
            kwargs["token_type_ids"] = rest[0]
        output = self.model(**kwargs)
        if self.task == "classify":
            return output.logits
        return pool(output.last_hidden_state, attention_mask, self.pooling)


def onnx_available() -> bool:
    """Whether onnxruntime can be imported here."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(description: ModelDescription, target: Path) -> Path:
    """Export ``description``'s model (float32, pooling included) to ``target`` atomically."""
    model = load_module(description, "cpu", torch.float32)
    token_types = takes_token_types(model)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_types else [])
    sample = [torch.ones(2, 8, dtype=torch.long) for _ in names]
    # Padding in the sample: a trace of an all-ones mask could let the model drop the mask branch.
    sample[1][1, 5:] = 0
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    try:
        with warnings.catch_warnings():
            # The tracer warns about Python-side branches (sdpa, masking) that the padded sample covers.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Exportable(model, description, token_types).eval(),
                tuple(sample),
                str(partial),
                input_names=names,
                output_names=["rows"],
                dynamic_axes={**axes, "rows": {0: "batch"}},
                opset_version=_OPSET,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many types; all mean "cannot export"
        partial.unlink(missing_ok=True)
        raise ModelLoadError(f"{description.path}: ONNX export failed ({type(exc).__name__}: {exc})") from exc
    partial.replace(target)
    return target


def cached_export(description: ModelDescription, cache_dir: Path) -> Path:
    """The ONNX file for this exact model (fingerprint, task, pooling), exported on first use."""
    name = f"{description.fingerprint}-{description.task}-{description.pooling}.onnx"
    target = cache_dir / name
    if not target.is_file():
        logger.info("exporting %s to ONNX (once per model fingerprint)", description.path)
        export_onnx(description, target)
    return target


def onnx_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session for ``path`` with bertserve's threading settings."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads must sleep, not spin: the event loop and tokenizers share these cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelLoadError(f"{path}: cannot load ONNX model ({type(exc).__name__})") from exc


def onnx_model_path(description: ModelDescription, cache_dir: Path, quantize: str = "none") -> Path:
    """The graph to run: the folder's own ``model.onnx``, or the cached export (int8 if asked)."""
    if description.onnx_only:
        if quantize != "none":
            raise ModelLoadError(
                f"{description.path}: already an ONNX graph; load-time quantize does not apply"
            )
        return description.weights
    exported = cached_export(description, cache_dir)
    if quantize == "none":
        return exported
    from models.compress.quantize import cached_int8

    return cached_int8(description, exported)


class OnnxBackend:
    """ONNX Runtime on CPU: float32, or int8 (a quantized variant, or quantized at load time)."""

    def __init__(
        self, description: ModelDescription, path: Path, threads: int, dtype: str = "float32"
    ) -> None:
        self.description = description
        self.device = "cpu"
        self.dtype = dtype
        self.path = path
        self.session = onnx_session(path, threads)
        self._inputs = [item.name for item in self.session.get_inputs()]

    def forward(self, batch: ModelInputs) -> np.ndarray:
        """Run one padded batch; returns float32 rows."""
        arrays = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids,
        }
        (rows,) = self.session.run(None, {name: arrays[name] for name in self._inputs})
        return np.asarray(rows, dtype=np.float32)
