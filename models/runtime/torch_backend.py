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
from models.runtime.errors import DeviceOutOfMemoryError, ModelLoadError
from models.runtime.folders import ModelDescription
from models.runtime.pooling import pool
from models.runtime.structure import shrink_to, structure_from_json
from models.runtime.tokenization import ModelInputs
from models.runtime.types import DType, Pooling, Task

logger = logging.getLogger(__name__)

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class TorchBackend:
    """PyTorch eager runtime (CPU or CUDA; float32, float16 or bfloat16).

    On CUDA a batch costs one host-to-device copy (its three index arrays packed in one pinned tensor),
    one device-to-host copy (the float32 rows, into pinned memory) and one synchronisation; both copies
    are asynchronous. Out of device memory on a batch raises :class:`DeviceOutOfMemoryError`, after
    which the next batch runs as usual.
    """

    def __init__(self, description: ModelDescription, device: str, dtype: DType) -> None:
        self.description = description
        self.device = resolve_device(device)
        self.dtype = dtype
        #: One batch at a time: eager PyTorch holds the GIL between kernels, and a GPU queues work anyway.
        self.streams = 1
        self.lone_all_threads = False
        #: Kernels do not depend on the shape seen before: padding would only add work.
        self.token_multiple = 1
        self.model = load_module(description, self.device, _TORCH_DTYPES[dtype])
        self._uses_token_types = takes_token_types(self.model)
        # Pinned (page-locked) host memory makes the copies asynchronous; it only exists with CUDA.
        self._pinned = self.device.startswith("cuda")
        #: Whether inputs are packed for one copy to the device (always off the CPU; tests set it on CPU).
        self.staged = self.device != "cpu"

    def forward(self, batch: ModelInputs, alone: bool = False) -> np.ndarray:
        """Run the model on ``batch`` under ``torch.inference_mode`` (one stream: ``alone`` changes
        nothing)."""
        try:
            with torch.inference_mode():
                return self._forward(batch)
        # torch.OutOfMemoryError is a RuntimeError; cuBLAS and the CPU allocator raise plain ones.
        except RuntimeError as exc:
            if not out_of_memory(exc):
                raise
            # Free the failed batch's cached blocks, so that the next (smaller) batch finds them.
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
            rows, longest = batch.input_ids.shape
            raise DeviceOutOfMemoryError(
                f"model ran out of {self.device} memory on a batch of {rows} inputs x {longest} tokens; "
                "retry, or send fewer or shorter inputs"
            ) from exc

    def _forward(self, batch: ModelInputs) -> np.ndarray:
        if self.staged:
            names = ["input_ids", "attention_mask"] + (["token_type_ids"] if self._uses_token_types else [])
            host = stage_inputs([getattr(batch, name) for name in names], self._pinned)
            packed = host.to(self.device, non_blocking=self._pinned)  # the one host-to-device copy
            kwargs = dict(zip(names, packed.unbind(0), strict=True))
        else:  # on CPU the model reads the arrays in place: no copy at all
            kwargs = module_inputs(batch, self._uses_token_types)
        rows = module_rows(self.model, self.description.task, self.description.pooling, kwargs).float()
        return rows_to_host(rows, self._pinned)


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says that an allocation failed (device or host), rather than that the model is
    broken: the batch was too large for the memory left, and a smaller or later one can run."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    message = str(exc)
    return any(
        sign in message for sign in ("out of memory", "can't allocate memory", "CUBLAS_STATUS_ALLOC_FAILED")
    )


def stage_inputs(arrays: list[np.ndarray], pinned: bool) -> torch.Tensor:
    """The batch's index arrays (same shape) packed into one int64 host tensor, pinned if asked: one
    copy to the device instead of one per array."""
    host = torch.empty((len(arrays), *arrays[0].shape), dtype=torch.int64, pin_memory=pinned)
    for slot, array in zip(host, arrays, strict=True):
        slot.copy_(torch.from_numpy(array))
    return host


def rows_to_host(rows: torch.Tensor, pinned: bool) -> np.ndarray:
    """The device's float32 ``rows`` as a host array: one asynchronous copy into pinned memory, then
    the batch's only synchronisation (nothing waits on the device per input)."""
    if rows.device.type == "cpu":
        return rows.numpy()
    host = torch.empty(rows.shape, dtype=torch.float32, pin_memory=pinned)
    host.copy_(rows, non_blocking=pinned)
    if pinned:
        torch.cuda.current_stream(rows.device).synchronize()
    return host.numpy()


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

    if description.onnx_only or description.openvino_only:
        runtime = "onnx or openvino" if description.onnx_only else "openvino"
        raise ModelLoadError(
            f"{description.path}: a graph-only variant; serve it with runtime {runtime} (CPU)"
        )
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
