"""Pick and build the runtime for a model: PyTorch or ONNX Runtime, float32, half precision or int8.

The engine does not care which one runs a model (:class:`models.runtime.EncoderBackend`); this module
decides, from the model folder and its settings, and fails with one clear message when the combination
cannot run (an int8 ONNX variant on CUDA, say).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from models.errors import ModelLoadError
from models.loading import ModelDescription
from models.onnx_backend import OnnxBackend, onnx_available, onnx_model_path
from models.runtime import DType, EncoderBackend, TorchBackend, resolve_device

logger = logging.getLogger(__name__)

Runtime = Literal["auto", "torch", "onnx"]
Quantize = Literal["none", "int8"]


def create_backend(
    description: ModelDescription,
    runtime: Runtime,
    device: str,
    dtype: DType,
    quantize: Quantize,
    onnx_cache: Path,
    threads: int,
) -> tuple[EncoderBackend, str]:
    """Build the backend for ``description``; returns it and the runtime's name (``torch``/``onnx``)."""
    on_cpu_fp32 = resolve_device(device) == "cpu" and dtype == "float32"
    needs_onnx = description.onnx_only or quantize == "int8"
    if needs_onnx and (runtime == "torch" or not on_cpu_fp32):
        what = "an int8 ONNX variant" if description.onnx_only else "quantize=int8"
        raise ModelLoadError(
            f"{description.path}: {what} runs on ONNX Runtime on CPU only (runtime auto or onnx)"
        )
    if runtime == "onnx" and not on_cpu_fp32:
        raise ModelLoadError(f"{description.path}: the onnx runtime serves float32 or int8 on CPU only")
    if needs_onnx or runtime == "onnx" or (runtime == "auto" and on_cpu_fp32 and onnx_available()):
        int8 = quantize == "int8" or (description.variant or {}).get("settings", {}).get("dtype") == "int8"
        try:
            path = onnx_model_path(description, onnx_cache, quantize)
            return OnnxBackend(description, path, threads, "int8" if int8 else "float32"), "onnx"
        except ModelLoadError as exc:
            if runtime == "onnx" or needs_onnx:
                raise
            # auto: an architecture the exporter cannot handle is still served, by PyTorch.
            logger.warning("%s: ONNX unavailable (%s); serving with PyTorch", description.path, exc)
    return TorchBackend(description, device, dtype), "torch"
