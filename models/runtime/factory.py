"""Pick and build the runtime for a model: PyTorch or ONNX Runtime, float32, half precision or int8.

The engine does not care which one runs a model (:class:`models.runtime.contract.EncoderBackend`); this
module decides, from the model folder and its settings, and fails with one clear message when the
combination cannot run (an int8 ONNX variant on CUDA, say). PyTorch is imported only when it is needed:
to serve with it, or to export a graph that is not in the cache yet.
"""

from __future__ import annotations

import logging
from pathlib import Path

from models.runtime.contract import EncoderBackend
from models.runtime.devices import resolve_device
from models.runtime.errors import ModelLoadError
from models.runtime.folders import ModelDescription
from models.runtime.onnx import OnnxBackend
from models.runtime.types import DType, Quantize, Runtime

logger = logging.getLogger(__name__)


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
    if needs_onnx or (runtime in ("onnx", "auto") and on_cpu_fp32):
        int8 = quantize == "int8" or (description.variant or {}).get("settings", {}).get("dtype") == "int8"
        try:
            path = onnx_model_path(description, onnx_cache, quantize, threads)
            return OnnxBackend(path, threads, "int8" if int8 else "float32"), "onnx"
        except ModelLoadError as exc:
            if runtime == "onnx" or needs_onnx:
                raise
            # auto: an architecture the exporter cannot handle is still served, by PyTorch.
            logger.warning("%s: ONNX unavailable (%s); serving with PyTorch", description.path, exc)
    try:
        from models.runtime.torch_backend import TorchBackend
    except ImportError as exc:
        raise ModelLoadError(
            f"{description.path}: the torch runtime needs PyTorch (pip install 'bertserve[torch]')"
        ) from exc

    return TorchBackend(description, device, dtype), "torch"


def onnx_model_path(
    description: ModelDescription, cache_dir: Path, quantize: Quantize = "none", threads: int = 2
) -> Path:
    """The graph to run: the folder's own ``model.onnx``, or the cached export (int8 if asked)."""
    if description.onnx_only:
        if quantize != "none":
            raise ModelLoadError(
                f"{description.path}: already an ONNX graph; load-time quantize does not apply"
            )
        return description.weights
    exported = cached_graph(description, cache_dir)
    if quantize == "none":
        return exported
    from models.runtime.int8 import cached_int8

    return cached_int8(description, exported, threads)


def cached_graph(description: ModelDescription, cache_dir: Path) -> Path:
    """The float32 ONNX graph of this exact model (fingerprint, task, pooling), exported on first use."""
    target = cache_dir / f"{description.fingerprint}-{description.task}-{description.pooling}.onnx"
    if not target.is_file():
        try:
            from models.runtime.export import export_onnx
        except ImportError as exc:  # a serving install: graphs are exported where PyTorch is
            raise ModelLoadError(
                f"{description.path}: no exported ONNX graph in {cache_dir}, and exporting one needs "
                "PyTorch (pip install 'bertserve[torch]', or run `bertserve models prepare` where it is)"
            ) from exc
        logger.info("exporting %s to ONNX (once per model fingerprint)", description.path)
        export_onnx(description, target)
    return target
