"""Export a model to ONNX (pooling or the classifier head inside the graph), once per fingerprint.

The export is a PyTorch module that includes pooling, so one call of the graph returns finished rows. The
factory caches it by fingerprint (:func:`models.runtime.factory.cached_graph`). This is the only runtime
module that needs PyTorch to serve on CPU, and only when a graph is not exported yet.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from models.runtime.errors import ModelLoadError
from models.runtime.folders import ModelDescription
from models.runtime.torch_backend import load_module, module_rows, takes_token_types

_OPSET = 17


class _Exportable(torch.nn.Module):
    """The encoder plus its pooling (or the classifier head) as one graph."""

    def __init__(self, model: torch.nn.Module, description: ModelDescription, token_types: bool) -> None:
        super().__init__()
        self.model = model
        self.task = description.task
        self.pooling = description.pooling
        self.token_types = token_types

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *rest: torch.Tensor
    ) -> torch.Tensor:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.token_types:
            kwargs["token_type_ids"] = rest[0]
        return module_rows(self.model, self.task, self.pooling, kwargs)


def export_onnx(description: ModelDescription, target: Path) -> Path:
    """Export ``description``'s model (float32, pooling included) to ``target`` atomically."""
    model = load_module(description, "cpu", torch.float32)
    token_types = takes_token_types(model)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_types else [])
    sample = [torch.ones(2, 8, dtype=torch.long) for _ in names]
    # Padding in the sample: a trace of an all-ones mask could let the model drop the mask branch.
    sample[1][1, 5:] = 0
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    try:
        with warnings.catch_warnings():
            # The tracer warns about Python-side branches (sdpa, masking) that the padded sample covers.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Exportable(model, description, token_types).eval(),
                tuple(sample),
                str(partial),
                input_names=names,
                output_names=["rows"],
                dynamic_axes={**axes, "rows": {0: "batch"}},
                opset_version=_OPSET,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many types; all mean "cannot export"
        partial.unlink(missing_ok=True)
        raise ModelLoadError(f"{description.path}: ONNX export failed ({type(exc).__name__}: {exc})") from exc
    partial.replace(target)
    return target
