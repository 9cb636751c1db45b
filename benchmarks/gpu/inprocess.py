"""In-process throughput of the PyTorch backend on the device: the engine's own path (one packed copy
in, one copy out, one synchronisation per batch), over batch sizes, sequence lengths and execution modes.

Modes: ``eager`` (transformers' eager attention), ``sdpa`` (PyTorch's fused scaled-dot-product attention),
``compile`` (SDPA under ``torch.compile``) and ``cudagraphs`` (SDPA under ``torch.compile`` with
``mode="reduce-overhead"``: CUDA graphs, which remove launch overhead on small batches; CUDA only).
Every mode compiles or warms up per shape before it is timed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.gpu.shapes import BF16_LIMIT_FLOPS, Deadline, Plan, flops_per_token
from models.runtime.folders import describe_model
from models.runtime.inference import encoded_rows
from models.runtime.tokenization import ModelInputs, TextTokenizer
from models.runtime.torch_backend import TorchBackend


@dataclass
class Point:
    """One measured (or skipped) shape."""

    model: str
    mode: str
    batch: int
    seq_len: int
    tokens_per_s: float = 0.0
    ms_per_batch: float = 0.0
    tflops: float = 0.0
    of_limit: float = 0.0
    skipped: str = ""


def synthetic_batch(batch: int, seq_len: int, vocab: int, seed: int = 0) -> ModelInputs:
    """``batch`` rows of ``seq_len`` random tokens, no padding (every position does work)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, vocab, size=(batch, seq_len), dtype=np.int64)
    return ModelInputs(ids, np.ones_like(ids), np.zeros_like(ids))


def backend_for(folder: Path, plan: Plan, mode: str) -> TorchBackend:
    """The engine's backend on the plan's device, switched to ``mode``."""
    backend = TorchBackend(describe_model(folder), plan.device, plan.dtype)  # type: ignore[arg-type]
    backend.model.set_attn_implementation("eager" if mode == "eager" else "sdpa")
    if mode in ("compile", "cudagraphs"):
        options: dict[str, Any] = {"backend": plan.compile_backend, "dynamic": False}
        if mode == "cudagraphs":
            options["mode"] = "reduce-overhead"
        backend.model = torch.compile(backend.model, **options)  # type: ignore[assignment]
    return backend


def time_batch(backend: TorchBackend, batch: ModelInputs, min_seconds: float) -> float:
    """Seconds per forward pass: three warm-up passes (compilation, graph capture), then passes until
    ``min_seconds`` have passed. ``forward`` returns host rows, so every pass has ended when it returns."""
    for _ in range(3):
        backend.forward(batch)
    runs, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < min_seconds or runs < 3:
        backend.forward(batch)
        runs += 1
    return elapsed / runs


def shapes_for(plan: Plan, mode: str) -> list[tuple[int, int]]:
    """(batch, sequence length) points of ``mode``: all of them, or the few compiled ones."""
    if mode in ("compile", "cudagraphs"):
        return list(plan.compiled_shapes)
    return [(size, seq_len) for seq_len in plan.seq_lens for size in plan.batches]


def measure_point(backend: TorchBackend, point: Point, config: dict[str, Any], plan: Plan) -> None:
    """Time one shape and fill in ``point`` (or say why it was skipped)."""
    batch = synthetic_batch(point.batch, point.seq_len, config["vocab_size"])
    try:
        seconds = time_batch(backend, batch, plan.min_seconds)
    except Exception as exc:  # a mode that cannot run a shape is reported, not fatal
        point.skipped = f"{type(exc).__name__}: {str(exc)[:120]}"
        return
    point.ms_per_batch = seconds * 1000
    point.tokens_per_s = point.batch * point.seq_len / seconds
    point.tflops = point.tokens_per_s * flops_per_token(config, point.seq_len) / 1e12
    point.of_limit = point.tflops * 1e12 / BF16_LIMIT_FLOPS


def sweep(name: str, folder: Path, config: dict[str, Any], plan: Plan, deadline: Deadline) -> list[Point]:
    """Every mode x shape of ``plan`` for one model. Each mode gets an equal share of the time left, and
    at least its first shape while ``deadline`` has time (a slow compile must not starve the modes after
    it); points past a share are marked skipped."""
    modes = [m for m in plan.modes if m != "cudagraphs" or plan.device.startswith("cuda")]
    points = []
    for index, mode in enumerate(modes):
        share = Deadline(deadline.left / (len(modes) - index))
        backend = backend_for(folder, plan, mode) if deadline.left > 0 else None
        for size, seq_len in shapes_for(plan, mode):
            point = Point(name, mode, size, seq_len)
            first = len(points) == 0 or points[-1].mode != mode
            if backend is None or (share.left <= 0 and not (first and deadline.left > 0)):
                point.skipped = "time budget"
            else:
                measure_point(backend, point, config, plan)
            points.append(point)
        del backend
        if plan.device.startswith("cuda"):
            torch.cuda.empty_cache()
    return points


def real_sentences_rate(folder: Path, plan: Plan, texts: list[str], batch_size: int) -> dict[str, float]:
    """Sentences/s of the backend on ``texts`` in length-sorted batches of ``batch_size`` (the shape the
    served benchmark's queue can build at best): the in-process side of served vs in-process."""
    description = describe_model(folder)
    backend = TorchBackend(description, plan.device, plan.dtype)  # type: ignore[arg-type]
    tokenizer = TextTokenizer.from_folder(folder, description.max_input_tokens)
    items = tokenizer.encode(texts, truncate=True)
    encoded_rows(backend, tokenizer, items[: 4 * batch_size], batch_size)  # warm-up
    started = time.perf_counter()
    rounds = 0
    while rounds < 2 or time.perf_counter() - started < plan.min_seconds:
        encoded_rows(backend, tokenizer, items, batch_size)
        rounds += 1
    seconds = time.perf_counter() - started
    return {
        "batch": batch_size,
        "sentences_per_s": rounds * len(items) / seconds,
        "mean_tokens": float(np.mean([item.tokens for item in items])),
    }


def as_rows(points: list[Point]) -> list[dict[str, Any]]:
    """Points as JSON-ready dicts."""
    return [asdict(point) for point in points]
