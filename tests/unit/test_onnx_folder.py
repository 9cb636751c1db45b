"""An ONNX-only copy of a model folder (graph + config + tokenizer, no weights) serves the same rows as
the original on ONNX Runtime: what the slim serving image ships instead of the built-in models' weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.runtime.autodtype import choose_auto
from models.runtime.cpu import host_bf16_flag
from models.runtime.drift import sample_rows
from models.runtime.factory import create_backend
from models.runtime.folders import describe_model
from models.runtime.openvino import openvino_available
from models.runtime.tokenization import TextTokenizer
from models.training.onnx_folder import write_onnx_folder

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("fixture", "task"), [("tiny_embedder", None), ("tiny_classifier", "classify")])
def test_onnx_folder_serves_the_same_rows(
    fixture: str, task: str | None, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source: Path = request.getfixturevalue(fixture)
    out = write_onnx_folder(source, tmp_path / "slim", tmp_path / "onnx", task)
    assert not list(out.glob("*.safetensors"))
    original, slim = describe_model(source, task=task), describe_model(out, task=task)  # type: ignore[arg-type]
    assert slim.onnx_only
    assert not slim.int8_onnx  # a float32 graph: dtype auto may run it in bfloat16 on OpenVINO
    assert (slim.task, slim.pooling, slim.labels) == (original.task, original.pooling, original.labels)
    rows = []
    for description in (original, slim):
        backend, runtime = create_backend(description, "onnx", "cpu", "float32", "none", tmp_path / "onnx", 1)
        assert runtime == "onnx"
        tokenizer = TextTokenizer.from_folder(description.path, description.max_input_tokens)
        rows.append(sample_rows(backend, tokenizer))
    np.testing.assert_array_equal(rows[0], rows[1])


def test_dtype_auto_treats_an_onnx_only_float32_folder_as_float32(
    tmp_path: Path, tiny_embedder: Path
) -> None:
    """The serving image's built-ins are ONNX-only float32 folders: dtype auto tries bfloat16 on them as
    on the original (not "int8 (quantized weights)"), and serves float32 when bfloat16 is switched off."""
    out = write_onnx_folder(tiny_embedder, tmp_path / "slim", tmp_path / "onnx")
    description = describe_model(out)
    off = choose_auto(description, "auto", "cpu", "none", tmp_path / "onnx", 1, "off")
    assert (off.runtime, off.backend.dtype) == ("onnx", "float32")
    assert off.reason.startswith("dtype auto: float32 (")
    # Policy "on": a tiny model is never faster in bfloat16, which policy "auto" would time and refuse.
    on = choose_auto(description, "auto", "cpu", "none", tmp_path / "onnx", 1, "on")
    assert "int8" not in on.reason
    if host_bf16_flag() and openvino_available():
        assert on.runtime == "openvino", on.reason
