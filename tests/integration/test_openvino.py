"""dtype auto end to end: bfloat16 on OpenVINO where the CPU has it, float32 with the reason otherwise."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import models.runtime.autodtype as autodtype
from models.runtime.cpu import host_bf16_flag
from models.runtime.openvino import TOKEN_MULTIPLE
from service.app import create_app
from service.settings import Settings
from tests.integration.conftest import started_client
from tests.integration.gated import GatedBackend
from tests.reference import reference_embeddings

pytestmark = pytest.mark.integration

needs_bf16 = pytest.mark.skipif(host_bf16_flag() is None, reason="this CPU has no native bfloat16")
TEXTS = ["A man is playing a guitar.", "The stock market fell sharply."]


async def _info_and_rows(settings: Settings) -> tuple[dict[str, dict[str, str]], np.ndarray, str]:
    app = create_app(settings)
    async for client in started_client(app):
        info = {m["name"]: m for m in (await client.get("/info")).json()["models"]}
        embedded = (await client.post("/embed", json={"inputs": TEXTS})).json()
        metrics = (await client.get("/metrics")).text
    return info, np.array(embedded), metrics


@needs_bf16
async def test_dtype_auto_serves_bfloat16_on_openvino(make_settings: Callable[..., Settings]) -> None:
    # Policy "on": the tiny test models are too small for bfloat16 to be faster, which "auto" times.
    info, rows, metrics = await _info_and_rows(make_settings(cpu_bfloat16="on"))
    _, exact, _ = await _info_and_rows(make_settings(runtime="onnx", cpu_bfloat16="on"))
    for model in info.values():
        assert (model["runtime"], model["dtype"]) == ("openvino", "bfloat16")
        assert f"CPU has {host_bf16_flag()}; min cosine to float32" in model["reason"]
        assert "served-like batches" not in model["reason"]  # "on" does not time
    assert 'runtime="openvino"' in metrics
    assert 'dtype="bfloat16"' in metrics
    assert float(np.min(np.sum(rows * exact, axis=1))) > 0.9999  # normalised rows: dot is the cosine


async def test_dtype_auto_serves_float32_when_bfloat16_is_off(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="models.runtime.autodtype"):
        info, _, metrics = await _info_and_rows(make_settings(cpu_bfloat16="off"))
    for model in info.values():
        assert (model["runtime"], model["dtype"]) == ("onnx", "float32")
        assert "float32 (bfloat16 turned off by the cpu_bfloat16 setting)" in model["reason"]
    assert "turned off by the cpu_bfloat16 setting" in caplog.text
    assert 'reason="dtype auto: float32' in metrics


@needs_bf16
async def test_dtype_auto_serves_float32_when_bfloat16_drifts(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("models.runtime.autodtype.BF16_MIN_COSINE", 1.000001)  # a floor nothing meets
    info, _, _ = await _info_and_rows(make_settings(cpu_bfloat16="auto"))
    for model in info.values():
        assert (model["runtime"], model["dtype"]) == ("onnx", "float32")
        assert "bfloat16 drifts too far" in model["reason"]


@needs_bf16
@pytest.mark.parametrize(("minimum", "served"), [(0.0, "bfloat16"), (1000.0, "float32")])
async def test_dtype_auto_serves_bfloat16_only_when_it_is_faster(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, minimum: float, served: str
) -> None:
    monkeypatch.setattr("models.runtime.autodtype.BF16_MIN_SPEEDUP", minimum)  # always / never fast enough
    info, _, _ = await _info_and_rows(make_settings(cpu_bfloat16="auto"))
    for model in info.values():
        assert model["dtype"] == served
        if served == "bfloat16":
            assert "x float32's speed on served-like batches" in model["reason"]
        else:
            assert model["runtime"] == "onnx"
            assert "bfloat16 is not faster here" in model["reason"]
            assert f"(needs {minimum}x)" in model["reason"]


@needs_bf16
async def test_dtype_auto_times_once_per_home_so_restarts_and_replicas_agree(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two servers timing at once on shared cores disagreed in CI (1.17x and 1.61x): the first timing
    of a model on a machine is kept in the home, and every later start reads it."""
    timings: list[str] = []
    real = autodtype.speedup

    def counted(*args: object, **kwargs: object) -> float:
        timings.append("timed")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("models.runtime.autodtype.speedup", counted)
    settings = make_settings(cpu_bfloat16="auto", home=tmp_path)  # a new home: nothing kept yet
    first, _, _ = await _info_and_rows(settings)
    second, _, _ = await _info_and_rows(settings)
    assert len(timings) == 2  # one per model, at the first start only
    for name, model in first.items():
        assert "timed at an earlier start" not in model["reason"]
        assert second[name]["dtype"] == model["dtype"]
        assert second[name]["reason"].endswith("(timed at an earlier start on this machine))")


@pytest.mark.parametrize("runtime", ["openvino", "onnx"])
async def test_openvino_batches_are_padded_to_the_token_multiple_with_the_same_answers(
    make_settings: Callable[..., Settings], tiny_embedder: Path, runtime: str
) -> None:
    # OpenVINO builds kernels per shape: padding its batches to a multiple of tokens bounds the shapes
    # it meets. ONNX Runtime's batches stay padded to their longest input only.
    texts = ["one", "a somewhat longer sentence of many words", "three words here", "four"]
    app = create_app(make_settings(runtime=runtime, cache="none"))
    async for client in started_client(app):
        recorded = GatedBackend(app.state.registry.get("tiny-embed", "embed"))
        response = await client.post("/embed", json={"inputs": texts})
    assert response.status_code == 200
    expected = reference_embeddings(tiny_embedder, texts)
    np.testing.assert_allclose(np.array(response.json()), expected, atol=2e-5)
    tokens = [shape[1] for shape in recorded.shapes]
    assert sum(shape[0] for shape in recorded.shapes) == len(texts)
    if runtime == "openvino":
        assert all(count % TOKEN_MULTIPLE == 0 for count in tokens)
    else:
        assert any(count % TOKEN_MULTIPLE for count in tokens)  # this input has a longest off the multiple
