"""The PyTorch runtime (CPU or CUDA; float32, float16 or bfloat16), and loading a model's module.

Also the one definition of what a model returns before post-processing (:func:`module_rows`): pooled
embeddings (before any normalisation) for embed models, logits for classifiers. The ONNX export and the
training loops use it too.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np
import torch

from models.runtime.devices import resolve_device
from models.runtime.errors import ModelLoadError
from models.runtime.folders import ModelDescription
from models.runtime.pooling import pool
from models.runtime.structure import shrink_to, structure_from_json
from models.runtime.tokenization import ModelInputs
from models.runtime.types import DType, Pooling, Task

logger = logging.getLogger(__name__)

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class TorchBackend:
    """PyTorch eager runtime (CPU or CUDA; float32, float16 or bfloat16)."""

    def __init__(self, description: ModelDescription, device: str, dtype: DType) -> None:
        self.description = description
        self.device = resolve_device(device)
        self.dtype = dtype
        self.model = load_module(description, self.device, _TORCH_DTYPES[dtype])
        self._uses_token_types = takes_token_types(self.model)

    def forward(self, batch: ModelInputs) -> np.ndarray:
        """Run the model on ``batch`` under ``torch.inference_mode``."""
        with torch.inference_mode():
            kwargs = module_inputs(batch, self._uses_token_types, self.device)
            rows = module_rows(self.model, self.description.task, self.description.pooling, kwargs)
            return rows.float().cpu().numpy()


def module_inputs(batch: ModelInputs, token_types: bool, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A padded batch as the keyword tensors a transformers module takes (token types only if it does)."""
    inputs = {
        "input_ids": torch.from_numpy(batch.input_ids).to(device),
        "attention_mask": torch.from_numpy(batch.attention_mask).to(device),
    }
    if token_types:
        inputs["token_type_ids"] = torch.from_numpy(batch.token_type_ids).to(device)
    return inputs


def module_rows(
    model: torch.nn.Module, task: Task, pooling: Pooling, inputs: dict[str, torch.Tensor]
) -> torch.Tensor:
    """What a backend returns before post-processing: logits for classifiers, pooled embeddings else."""
    output = model(**inputs)
    if task == "classify":
        return output.logits
    return pool(output.last_hidden_state, inputs["attention_mask"], pooling)


def takes_token_types(model: torch.nn.Module) -> bool:
    """Whether the model's forward accepts ``token_type_ids`` (DistilBERT does not)."""
    return "token_type_ids" in inspect.signature(model.forward).parameters


def load_module(description: ModelDescription, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """Load the model's weights (safetensors, no remote code) in eval mode on ``device``."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    if description.onnx_only:
        raise ModelLoadError(f"{description.path}: an ONNX-only variant; serve it with runtime onnx (CPU)")
    loader = AutoModelForSequenceClassification if description.task == "classify" else AutoModel
    structure = (description.variant or {}).get("structure")
    try:
        if structure is not None:
            model = _load_pruned(description, loader, structure)
        else:
            model = loader.from_pretrained(
                str(description.path),
                use_safetensors=True,
                trust_remote_code=False,
                dtype=dtype,
            )
    except ModelLoadError:
        raise
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError... for bad folders
        raise ModelLoadError(
            f"{description.path}: cannot load weights ({type(exc).__name__}: {exc})"
        ) from exc
    model = model.to(dtype)
    if device == "cpu" and dtype == torch.float16:
        logger.warning("float16 on CPU is slow and imprecise; prefer float32 or bfloat16")
    return model.to(device).eval()


def _load_pruned(description: ModelDescription, loader: Any, structure: Any) -> torch.nn.Module:
    """Build the full-size model from its config, shrink it to the variant's structure, load weights."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(description.path), trust_remote_code=False)
    model = loader.from_config(config)
    shrink_to(model, structure_from_json(structure))
    try:
        model.load_state_dict(load_file(str(description.weights)), strict=True)
    except RuntimeError as exc:  # shape or key mismatch: the folder and its variant.json disagree
        raise ModelLoadError(f"{description.weights}: weights do not match variant.json's structure") from exc
    return model
