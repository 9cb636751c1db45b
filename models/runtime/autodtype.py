"""``dtype: auto``: bfloat16 where the CPU has it natively, it stays as good as float32 and it is faster;
else float32.

bfloat16 keeps float32's range with 8 bits of mantissa: for BERT-family encoders on OpenVINO the outputs
stay within a cosine of 0.9999 of float32 while the CPU's bfloat16 units run up to twice as fast or more.
Every condition is checked at start-up, never assumed: the CPU flags (:mod:`models.runtime.cpu`), the
drift of the bfloat16 graph against the same graph in float32 (ONNX Runtime, the exact path) on the
built-in sample (:mod:`models.runtime.sample`; class probabilities for classifiers), and (policy
``auto``; ``on`` skips it) the speed of both on served-like batches of that sample
(:mod:`models.runtime.speed`), timed once per model and machine (:mod:`models.runtime.timings`) so that
replicas and restarts choose alike. When one fails the model is served in float32, and the log and
``/info`` say why.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from models.runtime.contract import EncoderBackend
from models.runtime.cpu import host_bf16_flag, host_cpu_name
from models.runtime.devices import resolve_device
from models.runtime.drift import compare, sample_rows
from models.runtime.errors import ModelLoadError
from models.runtime.factory import create_backend, onnx_model_path, openvino_cache
from models.runtime.folders import ModelDescription
from models.runtime.onnx import OnnxBackend
from models.runtime.speed import speedup
from models.runtime.timings import kept_ratio
from models.runtime.tokenization import TextTokenizer
from models.runtime.types import Bf16Policy, DType, Quantize, Runtime

logger = logging.getLogger(__name__)

#: bfloat16 is served only when every sample output stays at least this close to float32's.
BF16_MIN_COSINE = 0.9999
#: ... and (policy ``auto``) when it runs served-like batches at least this many times as fast. The margin
#: is what serving takes off: on four MiniLM-family models (2026-11-30, Zen 5) this timing ran 0.15-0.45
#: above the served ratio (a server shares the cores with its HTTP front end and runs two batches at
#: once); a pruned student timed at 1.03-1.10x served at 0.58x, the base timed at 1.50x served at 1.33x.
BF16_MIN_SPEEDUP = 1.25


@dataclass(frozen=True)
class Choice:
    """A built backend, the runtime that runs it, and why this runtime and dtype were chosen."""

    backend: EncoderBackend
    runtime: str
    reason: str


def choose_backend(
    description: ModelDescription,
    runtime: Runtime,
    device: str,
    dtype: DType,
    quantize: Quantize,
    onnx_cache: Path,
    threads: int,
    bf16: Bf16Policy = "auto",
    streams: int = 1,
    lone_all_threads: bool = False,
) -> Choice:
    """Build the backend for ``description``, resolving ``dtype: auto``; ``streams``: batches a CPU
    backend runs at once; ``lone_all_threads``: see :func:`create_backend`."""
    if dtype == "auto":
        return choose_auto(
            description, runtime, device, quantize, onnx_cache, threads, bf16, streams, lone_all_threads
        )
    backend, name = create_backend(
        description, runtime, device, dtype, quantize, onnx_cache, threads, streams, lone_all_threads
    )
    return Choice(backend, name, f"dtype {dtype} as configured")


def bf16_obstacle(runtime: Runtime, bf16: Bf16Policy, cpu_flag: str | None, openvino: bool) -> str | None:
    """Why bfloat16 cannot be tried on this CPU (None: it can); a pure function of its inputs."""
    if bf16 == "off":
        return "bfloat16 turned off by the cpu_bfloat16 setting"
    if cpu_flag is None:
        return "the CPU has no native bfloat16 (neither avx512_bf16 nor amx_bf16)"
    if runtime not in ("auto", "openvino"):
        return f"runtime {runtime} has no fast CPU bfloat16 (openvino has)"
    if not openvino:
        return "openvino is not installed"
    return None


def speed_obstacle(ratio: float, minimum: float) -> str | None:
    """Why a bfloat16 graph ``ratio`` times as fast as float32 is not served (None: it is)."""
    if ratio >= minimum:
        return None
    return (
        f"bfloat16 is not faster here: {ratio:.2f}x float32's speed on served-like batches of the "
        f"built-in sample (needs {minimum}x)"
    )


def choose_auto(
    description: ModelDescription,
    runtime: Runtime,
    device: str,
    quantize: Quantize,
    onnx_cache: Path,
    threads: int,
    bf16: Bf16Policy,
    streams: int = 1,
    lone_all_threads: bool = False,
) -> Choice:
    """Resolve ``dtype: auto`` for ``description`` and build its backend (``streams``: batches at once;
    ``lone_all_threads``: see :func:`create_backend`)."""
    float32 = functools.partial(
        create_backend,
        description,
        runtime,
        device,
        "float32",
        quantize,
        onnx_cache,
        threads,
        streams,
        lone_all_threads,
    )
    if resolve_device(device) != "cpu":
        backend, name = float32()
        return Choice(backend, name, "dtype auto on a GPU: float32")
    if quantize == "int8" or description.int8_onnx or description.openvino_only:
        backend, name = float32()
        return Choice(backend, name, "int8 (quantized weights)")
    from models.runtime.openvino import openvino_available

    flag = host_bf16_flag()
    obstacle = bf16_obstacle(runtime, bf16, flag, openvino_available())
    if obstacle is None and flag is not None:
        tried = _try_bfloat16(description, onnx_cache, threads, streams, flag, timed=bf16 == "auto")
        if isinstance(tried, Choice):
            return tried
        obstacle = tried
    reason = f"dtype auto: float32 ({obstacle})"
    logger.info("%s: %s", description.path, reason)
    backend, name = float32()
    return Choice(backend, name, reason)


def _try_bfloat16(
    description: ModelDescription, onnx_cache: Path, threads: int, streams: int, flag: str, timed: bool
) -> Choice | str:
    """The bfloat16 backend on OpenVINO if it stays within :data:`BF16_MIN_COSINE` of float32 on the
    built-in sample and (``timed``) is at least :data:`BF16_MIN_SPEEDUP` times as fast; else why not."""
    from models.runtime.openvino import OpenVinoBackend

    try:
        graph = onnx_model_path(description, onnx_cache)  # an ONNX-only folder's own graph
        candidate = OpenVinoBackend(graph, threads, "bfloat16", openvino_cache(onnx_cache), streams)
        tokenizer = TextTokenizer.from_folder(description.path, description.max_input_tokens)
        exact = OnnxBackend(graph, threads, streams=streams)  # the float32 path, as it would serve
        drift = compare(
            sample_rows(exact, tokenizer), sample_rows(candidate, tokenizer), "float32", description.task
        )
    except ModelLoadError as exc:
        return f"bfloat16 graph unavailable ({exc})"
    if drift.min_cosine < BF16_MIN_COSINE:
        return f"bfloat16 drifts too far (min cosine {drift.min_cosine:.6f} < {BF16_MIN_COSINE})"
    faster = ""
    if timed:
        key = timing_key(description, threads, streams, flag)
        measure = functools.partial(speedup, candidate, exact, tokenizer)
        ratio, kept = kept_ratio(onnx_cache / "timings", key, measure)
        when = " (timed at an earlier start on this machine)" if kept else ""
        slow = speed_obstacle(ratio, BF16_MIN_SPEEDUP)
        if slow is not None:
            return slow + when
        faster = f"; {ratio:.2f}x float32's speed on served-like batches{when}"
    reason = (
        f"dtype auto: bfloat16 (CPU has {flag}; min cosine to float32 on the built-in "
        f"sample {drift.min_cosine:.6f} >= {BF16_MIN_COSINE}{faster})"
    )
    logger.info("%s: %s", description.path, reason)
    return Choice(candidate, "openvino", reason)


def timing_key(description: ModelDescription, threads: int, streams: int, flag: str) -> dict[str, object]:
    """What the bfloat16 timing depends on: a start with another model, CPU, thread layout or runtime
    release times afresh."""
    return {
        # The method: a change in how the batches are made (OpenVINO's padded to 8 tokens) times afresh.
        "timing": "bfloat16 / float32, served-like batches, each padded as its backend is served",
        "model": description.fingerprint,
        "cpu": host_cpu_name(),
        "bf16_flag": flag,
        "threads": threads,
        "streams": streams,
        "openvino": _version("openvino"),
        "onnxruntime": _version("onnxruntime"),
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""
