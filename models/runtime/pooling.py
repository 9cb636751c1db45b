"""Pooling of token states into one vector per input (torch side of the pre/forward/post split)."""

from __future__ import annotations

import torch


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool ``hidden`` (batch, tokens, dim) into (batch, dim) by ``mode`` (``mean`` or ``cls``)."""
    if mode == "cls":
        return hidden[:, 0]
    if mode == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * weights).sum(dim=1)
        # Sum in the model dtype, divide in float32: float16 counts above 2048 lose precision.
        counts = weights.sum(dim=1).float().clamp(min=1e-9)
        return (summed.float() / counts).to(hidden.dtype)
    raise ValueError(f"unknown pooling mode {mode!r}")
