"""The names every layer shares: one definition of each choice (settings, schemas, backends import them)."""

from __future__ import annotations

from typing import Literal

Task = Literal["embed", "classify"]
Pooling = Literal["mean", "cls"]
Direction = Literal["right", "left"]
DType = Literal["float32", "float16", "bfloat16"]
Runtime = Literal["auto", "torch", "onnx"]
Quantize = Literal["none", "int8"]
#: Settings choices: a fixed value, or ``auto`` (decided from the model folder or the machine).
TaskChoice = Literal["auto", Task]
PoolingChoice = Literal["auto", Pooling]
#: A device setting: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (checked against the machine by
#: :func:`models.runtime.devices.resolve_device`).
DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"

#: One model input: a text, or a text pair (query and document, premise and hypothesis).
ModelInput = str | tuple[str, str]
