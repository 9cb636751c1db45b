"""Model backends: the runtime contract and its PyTorch implementation.

A backend turns a padded batch into one float32 row per input: pooled sentence embeddings (before any
normalisation) for embed models, logits for classifiers. Post-processing (normalise, Matryoshka cut,
softmax) is shared by every backend and lives in :mod:`models.postprocess`.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Literal, Protocol

import numpy as np
import torch

from models.errors import ModelLoadError
from models.loading import ModelDescription
from models.pooling import pool
from models.structure import shrink_to, structure_from_json
from models.tokenization import ModelInputs

logger = logging.getLogger(__name__)

DType = Literal["float32", "float16", "bfloat16"]
_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class EncoderBackend(Protocol):
    """What the engine needs from a runtime: one forward pass on one padded batch."""

    @property
    def device(self) -> str:
        """Where the model runs (``cpu``, ``cuda:0``...)."""
        ...

    @property
    def dtype(self) -> str:
        """Weights dtype name."""
        ...

    def forward(self, batch: ModelInputs) -> np.ndarray:
        """Return float32 rows, one per input: pooled embeddings or logits."""
        ...


def resolve_device(device: str) -> str:
    """Map ``auto`` to the best device present, and check that an explicit CUDA device exists."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ModelLoadError(f"device {device!r} does not exist")
        return device
    if device != "cpu":
        raise ModelLoadError(f"unknown device {device!r} (auto, cpu, cuda, cuda:N)")
    return device


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
            ids = torch.from_numpy(batch.input_ids).to(self.device)
            mask = torch.from_numpy(batch.attention_mask).to(self.device)
            kwargs = {"input_ids": ids, "attention_mask": mask}
            if self._uses_token_types:
                kwargs["token_type_ids"] = torch.from_numpy(batch.token_type_ids).to(self.device)
            output = self.model(**kwargs)
            if self.description.task == "classify":
                rows = output.logits
            else:
                rows = pool(output.last_hidden_state, mask, self.description.pooling)
            return rows.float().cpu().numpy()


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
