"""Which device a model runs on. PyTorch is only asked when CUDA could be meant: a CPU-only serving
install (ONNX Runtime, no PyTorch) resolves ``auto`` and ``cpu`` without importing it."""

from __future__ import annotations

import os

from models.runtime.errors import ModelLoadError


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


def default_threads() -> int:
    """Threads for inference and training when none are configured: one per core. The one definition,
    used by the service's settings, the backends and every training step."""
    return os.cpu_count() or 1
