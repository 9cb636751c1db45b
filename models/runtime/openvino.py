"""OpenVINO backend (CPU): the exported ONNX graph on OpenVINO's kernels, float32, bfloat16 or int8.

On CPUs with native bfloat16 (AVX-512 BF16, AMX) OpenVINO runs the same graph in bfloat16 nearly twice as
fast as ONNX Runtime in float32, at a cosine to float32 above 0.9999 for MiniLM; an int8 graph (quantize
nodes from a calibrated static quantization, :mod:`models.training.quantize`) runs on its VNNI int8
kernels. The graph is compiled once per file and configuration: OpenVINO's model cache
(``CACHE_DIR`` under the bertserve home) keeps the compiled blob, so a restart loads it in milliseconds.
Shapes stay dynamic (batch and tokens): a new batch shape is not a new compilation.
"""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime.devices import stream_count
from models.runtime.errors import ModelLoadError
from models.runtime.tokenization import ModelInputs

#: bertserve dtype name -> OpenVINO's ``INFERENCE_PRECISION_HINT`` (int8 graphs: bfloat16 where no
#: quantize node says otherwise, as OpenVINO itself does on such CPUs).
PRECISION_HINTS = {"float32": "f32", "bfloat16": "bf16", "int8": "bf16"}


#: Compiled kernels kept per model for distinct (batch, tokens) shapes. OpenVINO's default (5,000) lets
#: a server's memory grow by ~2 MB per new shape (measured: 0.2 -> 3.3 GB over 1,500 random shapes) while
#: this bound held it at ~0.8 GB. A shape that fell out is rebuilt at its next call (+18-66 ms on an AMX
#: Xeon, see TOKEN_MULTIPLE); with padded batches a larger bound bought nothing clear (RESULTS.md).
RUNTIME_CACHE_CAPACITY = 128

#: Batches are padded to a multiple of this many tokens. OpenVINO builds its kernels per shape (its
#: matrix products per batch x tokens) and a shape's first call costs 1.7x (bfloat16) to 3.7x (int8) a
#: later one; served batches at c64 come in hundreds of shapes, so most calls were first calls. Padding
#: to 8 cut the served CPU per request by a third (bfloat16) and a half (static int8) on an AMX Xeon,
#: for at most 7 masked tokens per row (benchmarks/RESULTS.md).
TOKEN_MULTIPLE = 8


def openvino_available() -> bool:
    """Whether the ``openvino`` package is installed."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def compile_config(threads: int, precision: str, streams: int = 1) -> dict[str, Any]:
    """The CPU plugin settings bertserve compiles every graph with."""
    return {
        "INFERENCE_PRECISION_HINT": precision,
        "INFERENCE_NUM_THREADS": threads,
        # ``streams`` batches at once (the engine's workers), the threads split between them.
        "NUM_STREAMS": streams,
        # Shared machines and containers: do not pin the threads to cores others are using.
        "ENABLE_CPU_PINNING": False,
        # Bounded memory: served batch shapes are countless.
        "CPU_RUNTIME_CACHE_CAPACITY": RUNTIME_CACHE_CAPACITY,
    }


def precision_refusal(dtype: str, compiled_hint: str) -> str | None:
    """Why a graph compiled for ``dtype`` cannot be served as ``dtype`` (None: it can), from the
    precision OpenVINO reports it compiled with (``f32``, ``bf16``). Where the CPU has no bfloat16,
    OpenVINO quietly compiles a bfloat16 request in float32; serving that as "bfloat16" would put a
    false dtype in ``/info`` and the metrics."""
    if dtype != "bfloat16" or compiled_hint == PRECISION_HINTS[dtype]:
        return None
    return (
        f"OpenVINO runs bfloat16 as {compiled_hint} on this CPU (it has no bfloat16 kernels); serve "
        "dtype auto (float32 here) or float32"
    )


def compile_graph(
    path: Path | Any, threads: int, precision: str, cache_dir: Path | None, streams: int = 1
) -> Any:
    """Compile ``path`` (ONNX, OpenVINO IR ``.xml``, or an in-memory ``openvino.Model``) for the CPU;
    cached in ``cache_dir`` (files only)."""
    import openvino as ov

    config = compile_config(threads, precision, streams)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        config["CACHE_DIR"] = str(cache_dir)
    try:
        return ov.Core().compile_model(str(path) if isinstance(path, Path) else path, "CPU", config)
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses for any bad graph or setting
        raise ModelLoadError(f"{path}: OpenVINO cannot compile it ({type(exc).__name__}: {exc})") from exc


class OpenVinoBackend:
    """OpenVINO on CPU: ``dtype`` float32, bfloat16, or int8 (a graph with quantize nodes). ``path``: a
    graph file, or an in-memory ``openvino.Model`` (the int8 recipe's trial graphs). ``streams``
    batches may run at once, each on its share of ``threads``."""

    def __init__(
        self,
        path: Path | Any,
        threads: int,
        dtype: str,
        cache_dir: Path | None = None,
        streams: int = 1,
    ) -> None:
        if dtype not in PRECISION_HINTS:
            raise ModelLoadError(f"{path}: OpenVINO serves {', '.join(PRECISION_HINTS)}, not {dtype}")
        self.device = "cpu"
        self.dtype = dtype
        self.path = path
        self.streams = stream_count(threads, streams)
        #: A stream keeps its threads, alone or not (a second compiled model would cost its own weights).
        self.lone_all_threads = False
        self.token_multiple = TOKEN_MULTIPLE
        self.compiled = compile_graph(path, threads, PRECISION_HINTS[dtype], cache_dir, self.streams)
        compiled_hint = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        refusal = precision_refusal(dtype, compiled_hint)
        if refusal is not None:
            raise ModelLoadError(f"{path}: {refusal}")
        self._inputs = [port.get_any_name() for port in self.compiled.inputs]
        # One infer request per stream, reused (their buffers stay allocated); a caller takes a free
        # one, so concurrent callers (the engine's workers, the drift check) never share a request.
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(self.streams):
            self._requests.put(self.compiled.create_infer_request())

    def forward(self, batch: ModelInputs, alone: bool = False) -> np.ndarray:
        """Run one padded batch; returns float32 rows (``alone`` changes nothing: a stream keeps its
        threads)."""
        arrays = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids,
        }
        feed = {name: arrays[name] for name in self._inputs}
        request = self._requests.get()
        try:
            result = request.infer(feed)
            return np.array(result[0], dtype=np.float32, copy=True)
        finally:
            self._requests.put(request)
