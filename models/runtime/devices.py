"""Which device a model runs on, and how large its batches may be there. PyTorch is only asked when
CUDA could be meant: a CPU-only serving install (ONNX Runtime, no PyTorch) resolves ``auto`` and ``cpu``
without importing it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from models.runtime.errors import ModelLoadError

#: Padded tokens per batch on CPU: past this, larger batches only add latency (benchmarks/RESULTS.md).
CPU_BATCH_TOKENS = 512
#: Inputs per batch on CPU.
CPU_BATCH_ITEMS = 64
#: Longest / shortest input of a CPU batch at most: padding costs compute one for one on CPU, and with a
#: thread per batch (two streams) small batches cost no more per input (benchmarks/RESULTS.md).
CPU_BATCH_LENGTH_RATIO = 1.25
#: The same on CUDA: a GPU is launch-bound, so it takes larger batches with more padding.
CUDA_BATCH_LENGTH_RATIO = 2.0
#: Inputs per batch on CUDA: a GPU is launch-bound on small batches, so it takes every waiting input
#: (up to the largest batch the GPU benchmark sweeps) and lets the token budget bound the memory.
CUDA_BATCH_ITEMS = 512
#: Bounds of the CUDA token budget: the floor keeps a small card batching at all; the cap keeps one
#: batch of a large model within tens of milliseconds on a large card (a queue should not wait longer).
CUDA_BATCH_TOKENS = (4096, 262_144)
#: Share of the device's free memory (at load) one batch's activations may use: the rest is headroom for
#: the allocator's fragmentation, other models loaded later, and the estimate's error.
CUDA_MEMORY_SHARE = 0.25
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def cuda_available() -> bool:
    """Whether PyTorch is installed and sees a CUDA device."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str) -> str:
    """Map ``auto`` to the best device present, and check that an explicit CUDA device exists."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device.startswith("cuda"):
        if not cuda_available():
            raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
        import torch

        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ModelLoadError(f"device {device!r} does not exist")
        return device
    if device != "cpu":
        raise ModelLoadError(f"unknown device {device!r} (auto, cpu, cuda, cuda:N)")
    return device


def activation_bytes_per_token(config: dict[str, Any], dtype: str) -> int:
    """Peak activation bytes one padded token costs in an inference forward pass (no autograd).

    The live buffers of one layer: a few hidden-size tensors (input, Q, K, V, attention output,
    residual), the FFN's intermediate activation (and its GELU output), and the attention scores and
    their softmax (heads x sequence length per token, eager attention; SDPA needs less).
    """
    hidden = config.get("hidden_size", 768)
    intermediate = config.get("intermediate_size", 4 * hidden)
    heads = config.get("num_attention_heads", 12)
    positions = config.get("max_position_embeddings", 512)
    return _DTYPE_BYTES.get(dtype, 4) * (8 * hidden + 2 * intermediate + 2 * heads * positions)


def cuda_batch_tokens(free_bytes: int, bytes_per_token: int) -> int:
    """The CUDA token budget for ``free_bytes`` of free device memory: a power of two within
    :data:`CUDA_BATCH_TOKENS` (powers of two keep the batch shapes, and kernel choices, few)."""
    fitting = int(free_bytes * CUDA_MEMORY_SHARE) // max(bytes_per_token, 1)
    low, high = CUDA_BATCH_TOKENS
    return max(low, min(high, 1 << max(fitting.bit_length() - 1, 0)))


def default_batch_limits(device: str, model_path: Path, dtype: str) -> tuple[int, int]:
    """(padded tokens, inputs) per batch when the settings leave them unset: fixed on CPU, sized from
    the free memory of the device on CUDA (read once, at load)."""
    if not device.startswith("cuda"):
        return CPU_BATCH_TOKENS, CPU_BATCH_ITEMS
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    config = json.loads((model_path / "config.json").read_text(encoding="utf-8"))
    return cuda_batch_tokens(free, activation_bytes_per_token(config, dtype)), CUDA_BATCH_ITEMS


def default_length_ratio(device: str) -> float:
    """Longest / shortest input per batch when the settings leave it unset."""
    return CUDA_BATCH_LENGTH_RATIO if device.startswith("cuda") else CPU_BATCH_LENGTH_RATIO


def stream_count(threads: int, streams: int) -> int:
    """Concurrent batches a CPU backend can run: ``streams``, at least 1 and at most one per thread."""
    return max(1, min(streams, threads))


def default_threads() -> int:
    """Threads for inference and training when none are configured: one per core. The one definition,
    used by the service's settings, the backends and every training step."""
    return os.cpu_count() or 1
