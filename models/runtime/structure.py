"""Structured shapes of pruned BERT encoders: which heads and FFN neurons each layer keeps.

Hugging Face's BERT config cannot say "layer 3 has 9 heads and 1,100 FFN neurons", so a pruned model is
saved as its (smaller) safetensors plus a ``structure`` entry in ``variant.json``: per layer, the number of
attention heads and of intermediate neurons kept. Loading builds the model from its config at full size,
shrinks every layer's matrices to those counts, then loads the weights strictly, so a wrong shape fails
loudly. The attention code of BERT reshapes with ``-1`` heads, so fewer heads need no other change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from models.runtime.errors import ModelLoadError


@dataclass(frozen=True)
class LayerShape:
    """What one encoder layer keeps."""

    heads: int
    intermediate: int


def encoder_layers(model: torch.nn.Module) -> list[Any]:
    """The transformer layers of a BERT-style model (base model or a task head around one)."""
    base = getattr(model, "base_model", model)
    encoder = getattr(base, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if layers is None:
        raise ModelLoadError(f"{type(model).__name__}: structured pruning supports BERT-style encoders only")
    return list(layers)


def head_size(layer: Any) -> int:
    """Width of one attention head of ``layer``."""
    return int(layer.attention.self.attention_head_size)


def layer_shapes(model: torch.nn.Module) -> list[LayerShape]:
    """Current heads and intermediate neurons of every layer."""
    shapes = []
    for layer in encoder_layers(model):
        heads = layer.attention.self.query.out_features // head_size(layer)
        shapes.append(LayerShape(heads=heads, intermediate=layer.intermediate.dense.out_features))
    return shapes


def _slice_linear(linear: torch.nn.Linear, keep: torch.Tensor, dim: int) -> torch.nn.Linear:
    """A new Linear keeping rows (``dim=0``: outputs) or columns (``dim=1``: inputs) ``keep``."""
    weight = linear.weight.detach().index_select(dim, keep).clone()
    bias: torch.Tensor | None = None
    if linear.bias is not None:
        bias = linear.bias.detach()
        bias = (bias.index_select(0, keep) if dim == 0 else bias).clone()
    out_features, in_features = weight.shape
    new = torch.nn.Linear(
        in_features, out_features, bias=bias is not None, device=weight.device, dtype=weight.dtype
    )
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    new.requires_grad_(linear.weight.requires_grad)
    return new


def keep_heads(layer: Any, heads: Sequence[int]) -> None:
    """Shrink ``layer``'s attention to ``heads`` (indices of the current heads, at least one)."""
    if not heads:
        raise ValueError("a layer must keep at least one attention head")
    size = head_size(layer)
    rows = torch.cat([torch.arange(h * size, (h + 1) * size) for h in sorted(heads)])
    attention = layer.attention.self
    rows = rows.to(attention.query.weight.device)
    for name in ("query", "key", "value"):
        setattr(attention, name, _slice_linear(getattr(attention, name), rows, dim=0))
    attention.num_attention_heads = len(heads)
    attention.all_head_size = len(heads) * size
    output = layer.attention.output
    output.dense = _slice_linear(output.dense, rows, dim=1)


def keep_neurons(layer: Any, neurons: Sequence[int]) -> None:
    """Shrink ``layer``'s feed-forward block to the intermediate ``neurons`` (at least one)."""
    if not neurons:
        raise ValueError("a layer must keep at least one feed-forward neuron")
    keep = torch.tensor(sorted(neurons), device=layer.intermediate.dense.weight.device)
    layer.intermediate.dense = _slice_linear(layer.intermediate.dense, keep, dim=0)
    layer.output.dense = _slice_linear(layer.output.dense, keep, dim=1)


def shrink_to(model: torch.nn.Module, shapes: Sequence[LayerShape]) -> None:
    """Shrink a full-size model to ``shapes`` (keeping the first heads and neurons; for loading)."""
    layers = encoder_layers(model)
    if len(shapes) != len(layers):
        raise ModelLoadError(f"structure lists {len(shapes)} layers but the model has {len(layers)}")
    for layer, shape in zip(layers, shapes, strict=True):
        keep_heads(layer, range(shape.heads))
        keep_neurons(layer, range(shape.intermediate))


def structure_to_json(shapes: Sequence[LayerShape]) -> list[dict[str, int]]:
    """The ``structure`` entry of ``variant.json``."""
    return [{"heads": s.heads, "intermediate": s.intermediate} for s in shapes]


def structure_from_json(entry: Any) -> list[LayerShape]:
    """Parse a ``structure`` entry, raising :class:`ModelLoadError` when malformed."""
    try:
        shapes = [
            LayerShape(heads=int(item["heads"]), intermediate=int(item["intermediate"])) for item in entry
        ]
    except (TypeError, KeyError, ValueError) as exc:
        raise ModelLoadError(f"variant.json: malformed structure ({exc})") from exc
    if any(s.heads < 1 or s.intermediate < 1 for s in shapes):
        raise ModelLoadError("variant.json: every layer needs at least one head and one neuron")
    return shapes


def pruned_structure(model: Any) -> list[LayerShape] | None:
    """The per-layer shapes when any layer differs from the config (a pruned model), else None."""
    shapes = layer_shapes(model)
    full = LayerShape(model.config.num_attention_heads, model.config.intermediate_size)
    return shapes if any(shape != full for shape in shapes) else None
