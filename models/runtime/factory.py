"""Pick and build the runtime for a model: PyTorch, ONNX Runtime or OpenVINO; float32, half precision
or int8; and ``dtype: auto``.

The engine does not care which one runs a model (:class:`models.runtime.contract.EncoderBackend`); this
module decides, from the model folder and its settings, and fails with one clear message when the
combination cannot run (an int8 ONNX variant on CUDA, say). PyTorch is imported only when it is needed:
to serve with it, or to export a graph that is not in the cache yet. ``dtype: auto`` is resolved one level
up, in :mod:`models.runtime.autodtype` (which builds on this module).
"""

from __future__ import annotations

import logging
from pathlib import Path

from models.runtime.contract import EncoderBackend
from models.runtime.cpu import host_bf16_flag
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
    streams: int = 1,
    lone_all_threads: bool = False,
) -> tuple[EncoderBackend, str]:
    """Build the backend for an explicit ``dtype``; returns it and the runtime's name. ``streams``:
    batches an ONNX Runtime or OpenVINO backend runs at once (PyTorch runs one); ``lone_all_threads``:
    an ONNX Runtime batch running alone gets every thread (see :class:`OnnxBackend`).

    ``runtime: auto`` on CPU: ONNX Runtime for float32 (the exact path) and int8, OpenVINO for bfloat16
    where OpenVINO is installed and the CPU has native bfloat16 (else PyTorch) and for an OpenVINO int8
    variant, PyTorch for the rest.
    """
    if dtype == "auto":
        raise ValueError("create_backend needs an explicit dtype (autodtype.choose_backend resolves auto)")
    on_cpu = resolve_device(device) == "cpu"
    int8 = quantize == "int8" or description.int8_onnx
    if description.openvino_only and runtime not in ("auto", "openvino"):
        raise ModelLoadError(
            f"{description.path}: an OpenVINO int8 variant runs on the openvino runtime only"
        )
    wants_openvino = description.openvino_only or (dtype == "bfloat16" and on_cpu and _openvino_bf16())
    if runtime == "openvino" or (runtime == "auto" and wants_openvino):
        return _openvino(description, on_cpu, dtype, quantize, onnx_cache, threads, streams), "openvino"
    on_cpu_fp32 = on_cpu and dtype == "float32"
    if int8 and (runtime == "torch" or not on_cpu_fp32):
        what = "an int8 ONNX variant" if description.int8_onnx else "quantize=int8"
        raise ModelLoadError(
            f"{description.path}: {what} runs on CPU only, on ONNX Runtime or OpenVINO (runtime auto, "
            "onnx or openvino; dtype float32 or auto)"
        )
    if runtime == "onnx" and not on_cpu_fp32:
        raise ModelLoadError(f"{description.path}: the onnx runtime serves float32 or int8 on CPU only")
    if int8 or (runtime in ("onnx", "auto") and on_cpu_fp32):
        try:
            path = onnx_model_path(description, onnx_cache, quantize, threads)
            dtype_name = "int8" if int8 else "float32"
            return OnnxBackend(path, threads, dtype_name, streams, lone_all_threads), "onnx"
        except ModelLoadError as exc:
            if runtime == "onnx" or int8:
                raise
            # auto: an architecture the exporter cannot handle is still served, by PyTorch.
            logger.warning("%s: ONNX unavailable (%s); serving with PyTorch", description.path, exc)
    if on_cpu and dtype == "bfloat16" and host_bf16_flag() is None:
        logger.warning(
            "%s: this CPU has no native bfloat16, so PyTorch emulates it, slower than float32 "
            "(dtype auto serves float32 here)",
            description.path,
        )
    try:
        from models.runtime.torch_backend import TorchBackend
    except ImportError as exc:
        raise ModelLoadError(
            f"{description.path}: the torch runtime needs PyTorch (pip install 'bertserve[torch]')"
        ) from exc

    return TorchBackend(description, device, dtype), "torch"


def _openvino_bf16() -> bool:
    """Whether OpenVINO can run bfloat16 here: installed, on a CPU with native bfloat16 (elsewhere it
    compiles a bfloat16 request in float32, which :class:`OpenVinoBackend` refuses to serve as bfloat16)."""
    from models.runtime.openvino import openvino_available

    return host_bf16_flag() is not None and openvino_available()


def _openvino(
    description: ModelDescription,
    on_cpu: bool,
    dtype: DType,
    quantize: Quantize,
    onnx_cache: Path,
    threads: int,
    streams: int,
) -> EncoderBackend:
    """OpenVINO on the model's graph: float32 or bfloat16, or int8 for an int8 graph."""
    from models.runtime.openvino import OpenVinoBackend

    if not on_cpu or dtype not in ("float32", "bfloat16"):
        raise ModelLoadError(
            f"{description.path}: the openvino runtime serves float32 or bfloat16 on CPU only"
        )
    int8 = quantize == "int8" or description.int8_onnx or description.openvino_only
    path = onnx_model_path(description, onnx_cache, quantize, threads)
    dtype_name = "int8" if int8 else dtype
    return OpenVinoBackend(path, threads, dtype_name, openvino_cache(onnx_cache), streams)


def openvino_cache(onnx_cache: Path) -> Path:
    """Where OpenVINO keeps its compiled blobs of the cached graphs (keyed by graph and settings)."""
    return onnx_cache / "openvino"


def onnx_model_path(
    description: ModelDescription, cache_dir: Path, quantize: Quantize = "none", threads: int = 2
) -> Path:
    """The graph to run: the folder's own ``model.onnx`` (or OpenVINO IR), or the cached export (int8
    if asked)."""
    if description.onnx_only or description.openvino_only:
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
