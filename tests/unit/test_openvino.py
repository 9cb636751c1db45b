"""The OpenVINO backend on tiny models: the same rows as ONNX Runtime from the same graph, compiled once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from models.runtime.autodtype import choose_backend
from models.runtime.cpu import host_bf16_flag
from models.runtime.drift import compare, sample_rows
from models.runtime.errors import ModelLoadError
from models.runtime.factory import create_backend, onnx_model_path, openvino_cache
from models.runtime.folders import describe_model
from models.runtime.openvino import (
    RUNTIME_CACHE_CAPACITY,
    TOKEN_MULTIPLE,
    OpenVinoBackend,
    compile_config,
    precision_refusal,
)
from models.runtime.tokenization import TextTokenizer

pytestmark = pytest.mark.unit

#: bfloat16 where this CPU has it natively (OpenVINO compiles it there), else float32.
NATIVE_BF16 = host_bf16_flag() is not None
needs_bf16 = pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bfloat16")
lacks_bf16 = pytest.mark.skipif(NATIVE_BF16, reason="this CPU has native bfloat16")
BF16_OR_FP32 = "bfloat16" if NATIVE_BF16 else "float32"


@pytest.mark.parametrize("which", ["tiny_embedder", "tiny_classifier"])
def test_float32_matches_onnx_runtime_and_bfloat16_stays_close(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    description = describe_model(request.getfixturevalue(which))
    tokenizer = TextTokenizer.from_folder(description.path, description.max_input_tokens)
    onnx, _ = create_backend(description, "onnx", "cpu", "float32", "none", tmp_path, 1)
    reference = sample_rows(onnx, tokenizer)
    runs = (("float32", 1e-5), ("bfloat16", 0.05)) if NATIVE_BF16 else (("float32", 1e-5),)
    for dtype, tolerance in runs:
        backend, runtime = create_backend(description, "openvino", "cpu", dtype, "none", tmp_path, 1)
        assert (runtime, backend.dtype) == ("openvino", dtype)
        rows = sample_rows(backend, tokenizer)
        np.testing.assert_allclose(rows, reference, atol=tolerance)
        assert compare(reference, rows, "float32", description.task).min_cosine > 0.999


def test_compiled_once_per_graph_and_shapes_stay_dynamic(tiny_embedder: Path, tmp_path: Path) -> None:
    description = describe_model(tiny_embedder)
    first, _ = create_backend(description, "openvino", "cpu", BF16_OR_FP32, "none", tmp_path, 1)
    assert isinstance(first, OpenVinoBackend)
    blobs = sorted(openvino_cache(tmp_path).glob("*.blob"))
    assert len(blobs) == 1
    stamp = blobs[0].stat().st_mtime_ns
    create_backend(description, "openvino", "cpu", BF16_OR_FP32, "none", tmp_path, 1)
    assert sorted(openvino_cache(tmp_path).glob("*.blob")) == blobs  # loaded from the cache, not rebuilt
    assert blobs[0].stat().st_mtime_ns == stamp
    # Batch and tokens stay dynamic: a new batch shape runs the same compiled model.
    assert all(port.get_partial_shape().is_dynamic for port in first.compiled.inputs)
    tokenizer = TextTokenizer.from_folder(description.path, description.max_input_tokens)
    for texts in (["one"], ["two words here"] * 5, ["a longer sentence with many more tokens in it"] * 3):
        assert first.forward(tokenizer.collate(tokenizer.encode(texts, truncate=True))).shape[0] == len(texts)


@pytest.mark.parametrize("dtype", ["float32", pytest.param("bfloat16", marks=needs_bf16)])
def test_batches_padded_to_a_token_multiple_give_the_same_rows(
    tiny_embedder: Path, tmp_path: Path, dtype: str
) -> None:
    # OpenVINO builds kernels per shape, so its batches are padded to a multiple of tokens: fewer shapes.
    # The padding is masked: the rows match those of the batch padded only to its longest input.
    description = describe_model(tiny_embedder)
    backend, _ = create_backend(description, "openvino", "cpu", dtype, "none", tmp_path, 1)  # type: ignore[arg-type]
    assert backend.token_multiple == TOKEN_MULTIPLE > 1
    tokenizer = TextTokenizer.from_folder(description.path, description.max_input_tokens)
    items = tokenizer.encode(["a short one", "a somewhat longer sentence of many words"], truncate=True)
    assert max(item.tokens for item in items) % TOKEN_MULTIPLE  # the test needs a longest off the multiple
    padded = tokenizer.collate(items, backend.token_multiple)
    assert padded.input_ids.shape[1] % TOKEN_MULTIPLE == 0
    tight = backend.forward(tokenizer.collate(items))
    tolerance = 1e-5 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(backend.forward(padded), tight, rtol=0, atol=tolerance)


def test_openvino_refuses_what_it_cannot_serve(tiny_embedder: Path, tmp_path: Path) -> None:
    description = describe_model(tiny_embedder)
    with pytest.raises(ModelLoadError, match="openvino runtime serves float32 or bfloat16 on CPU"):
        create_backend(description, "openvino", "cpu", "float16", "none", tmp_path, 1)


@needs_bf16
def test_bfloat16_on_cpu_runs_on_openvino_with_runtime_auto(tiny_embedder: Path, tmp_path: Path) -> None:
    description = describe_model(tiny_embedder)
    backend, runtime = create_backend(description, "auto", "cpu", "bfloat16", "none", tmp_path, 1)
    assert (runtime, backend.dtype) == ("openvino", "bfloat16")
    # float32 keeps the exact path.
    choice = choose_backend(description, "auto", "cpu", "float32", "none", tmp_path, 1)
    assert (choice.runtime, choice.backend.dtype) == ("onnx", "float32")
    assert "as configured" in choice.reason


def test_bfloat16_is_refused_where_openvino_would_compile_float32() -> None:
    assert precision_refusal("bfloat16", "bf16") is None
    assert precision_refusal("float32", "f32") is None
    assert precision_refusal("int8", "f32") is None  # an int8 graph's other layers: float32 here
    refusal = precision_refusal("bfloat16", "f32")
    assert refusal is not None
    assert "runs bfloat16 as f32 on this CPU" in refusal
    assert "dtype auto (float32 here) or float32" in refusal


def test_openvino_serves_bfloat16_only_where_it_compiles_it(tiny_embedder: Path, tmp_path: Path) -> None:
    # OpenVINO's own answer on this CPU: without bfloat16 kernels it compiles a bfloat16 request in float32.
    description = describe_model(tiny_embedder)
    graph = onnx_model_path(description, tmp_path)
    compiled = ov.Core().compile_model(str(graph), "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    if compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "bf16":
        backend, _ = create_backend(description, "openvino", "cpu", "bfloat16", "none", tmp_path, 1)
        assert backend.dtype == "bfloat16"
    else:
        with pytest.raises(ModelLoadError, match="OpenVINO runs bfloat16 as f32 on this CPU"):
            create_backend(description, "openvino", "cpu", "bfloat16", "none", tmp_path, 1)


@lacks_bf16
def test_without_native_bfloat16_runtime_auto_runs_bfloat16_on_pytorch(
    tiny_embedder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    description = describe_model(tiny_embedder)
    backend, runtime = create_backend(description, "auto", "cpu", "bfloat16", "none", tmp_path, 1)
    assert (runtime, backend.dtype) == ("torch", "bfloat16")
    assert "no native bfloat16, so PyTorch emulates it" in caplog.text


def test_load_time_int8_runs_on_openvino(tiny_embedder: Path, tmp_path: Path) -> None:
    description = describe_model(tiny_embedder)
    tokenizer = TextTokenizer.from_folder(description.path, description.max_input_tokens)
    onnx, _ = create_backend(description, "onnx", "cpu", "float32", "int8", tmp_path, 1)
    backend, runtime = create_backend(description, "openvino", "cpu", "float32", "int8", tmp_path, 1)
    assert (runtime, backend.dtype) == ("openvino", "int8")
    drift = compare(sample_rows(onnx, tokenizer), sample_rows(backend, tokenizer), "onnx int8")
    assert drift.min_cosine > 0.99


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_two_streams_run_concurrent_batches_with_the_same_rows(
    runtime: str, tiny_embedder: Path, tmp_path: Path
) -> None:
    description = describe_model(tiny_embedder)
    tokenizer = TextTokenizer.from_folder(description.path, description.max_input_tokens)
    single, _ = create_backend(description, runtime, "cpu", "float32", "none", tmp_path, 1)  # type: ignore[arg-type]
    double, _ = create_backend(description, runtime, "cpu", "float32", "none", tmp_path, 2, streams=2)  # type: ignore[arg-type]
    assert (single.streams, double.streams) == (1, 2)
    if isinstance(double, OpenVinoBackend):
        assert int(double.compiled.get_property("NUM_STREAMS")) == 2
        # Memory stays bounded however many batch shapes are served (the compiled model does not
        # report this setting back; an unknown key would have failed the compilation).
        assert compile_config(2, "f32", 2)["CPU_RUNTIME_CACHE_CAPACITY"] == RUNTIME_CACHE_CAPACITY
    texts = [[f"text {i} " + "more " * (i % 7)] * (i % 5 + 1) for i in range(40)]
    batches = [tokenizer.collate(tokenizer.encode(group, truncate=True)) for group in texts]
    expected = [single.forward(batch) for batch in batches]
    with ThreadPoolExecutor(4) as pool:  # more callers than streams: they wait for a free one
        got = list(pool.map(double.forward, batches))
    for rows, reference in zip(got, expected, strict=True):
        np.testing.assert_allclose(rows, reference, atol=1e-5)
    # The threads bound the streams: one thread runs one batch at a time.
    one, _ = create_backend(description, runtime, "cpu", "float32", "none", tmp_path, 1, streams=2)  # type: ignore[arg-type]
    assert one.streams == 1
