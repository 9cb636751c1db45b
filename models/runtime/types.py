"""The names every layer shares: one definition of each choice (settings, schemas, backends import them)."""

from __future__ import annotations

from typing import Literal

Task = Literal["embed", "classify"]
Pooling = Literal["mean", "cls"]
Direction = Literal["right", "left"]
#: ``auto``: bfloat16 on CPUs with native bfloat16 when it stays within the drift floor, else float32.
DType = Literal["auto", "float32", "float16", "bfloat16"]
Runtime = Literal["auto", "torch", "onnx", "openvino"]
Quantize = Literal["none", "int8"]
#: ``off`` pretends the CPU has no native bfloat16 (``dtype: auto`` then serves float32).
Bf16Policy = Literal["auto", "on", "off"]
#: Settings choices: a fixed value, or ``auto`` (decided from the model folder or the machine).
TaskChoice = Literal["auto", Task]
PoolingChoice = Literal["auto", Pooling]
#: A device setting: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (checked against the machine by
#: :func:`models.runtime.devices.resolve_device`).
DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"

#: One model input: a text, or a text pair (query and document, premise and hypothesis).
ModelInput = str | tuple[str, str]
