"""Variants built by the compression pipeline load in the service like any model, with a drift check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI

from models.runtime.builtins import default_home
from models.runtime.cpu import host_bf16_flag
from models.runtime.errors import ModelLoadError
from models.runtime.int8 import Int8Targets
from models.training.distill import distill
from models.training.distillation import DistillConfig
from models.training.prune import prune_magnitude, prune_structured
from models.training.quantize import quantize_dtype, quantize_int8
from service.app import create_app
from service.settings import Settings
from tests.integration.conftest import started_client

pytestmark = pytest.mark.integration

TEXTS = ["A man is playing a guitar.", "The stock market fell sharply.", "Two dogs run through a field."]
QUICK = DistillConfig(epochs=1, max_texts=32, batch_size=16, threads=1)


@pytest.fixture(scope="module")
def variants(
    tiny_embedder: Path, tiny_classifier: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """An int8, a pruned and a distilled embedder, and an int8 classifier, of the tiny models."""
    root, home = tmp_path_factory.mktemp("variants"), default_home()
    loose = Int8Targets(min_mean_cosine=0.9, min_cosine=0.5)
    quantize_int8(tiny_embedder, root / "int8", home, loose)
    quantize_int8(tiny_classifier, root / "classify-int8", home, loose)
    prune_structured(tiny_embedder, root / "pruned", home, 0.5, 0.5, "random", QUICK, progress=False)
    distill(tiny_embedder, root / "student", home, 1, QUICK, progress=False)
    prune_magnitude(tiny_embedder, root / "sparse", 0.5)
    quantize_dtype(tiny_embedder, root / "half", "bfloat16")
    return {name: root / name for name in ("int8", "classify-int8", "pruned", "student", "sparse", "half")}


def _settings(make_settings: Callable[..., Settings], models: list[dict[str, Any]], **extra: Any) -> Settings:
    base = make_settings()
    return Settings(**{**base.model_dump(exclude={"models"}), "models": models, **extra})


async def test_every_variant_serves_and_reports_its_drift(
    make_settings: Callable[..., Settings], variants: dict[str, Path]
) -> None:
    models = [
        {"name": name, "source": str(path), "task": "classify" if name.startswith("classify") else "embed"}
        for name, path in variants.items()
    ]
    app: FastAPI = create_app(_settings(make_settings, models))
    async for client in started_client(app):
        info = {m["name"]: m for m in (await client.get("/info")).json()["models"]}
        assert info["int8"]["runtime"] == "onnx"
        assert info["int8"]["dtype"] == "int8"
        assert {info[name]["variant"] for name in info} == {
            "quantize-int8",
            "prune",
            "distill",
            "prune-magnitude",
            "quantize-bfloat16",
        }
        for name in variants:
            drift = info[name]["drift"]
            assert drift["reference"].startswith("base ")
            assert drift["samples"] == 48
            assert -1 <= drift["min_cosine"] <= drift["mean_cosine"] <= 1
        for name in ("int8", "pruned", "student", "sparse", "half"):
            response = await client.post("/embed", json={"inputs": TEXTS, "model": name})
            assert response.status_code == 200
            rows = np.array(response.json())
            np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)
        response = await client.post("/classify", json={"inputs": TEXTS, "model": "classify-int8"})
        assert response.status_code == 200
        assert len(response.json()) == 3
        metrics = (await client.get("/metrics")).text
        assert 'bertserve_model_drift_cosine{model="int8",stat="min"}' in metrics


async def test_every_variant_serves_on_openvino(
    make_settings: Callable[..., Settings], variants: dict[str, Path]
) -> None:
    # bfloat16 where this CPU has it; elsewhere OpenVINO would compile it as float32 and is refused.
    dtype = "bfloat16" if host_bf16_flag() else "float32"
    models = [
        {
            "name": name,
            "source": str(path),
            "task": "classify" if name.startswith("classify") else "embed",
            "runtime": "openvino",
            "dtype": dtype,
        }
        for name, path in variants.items()
    ]
    app: FastAPI = create_app(_settings(make_settings, models))
    async for client in started_client(app):
        info = {m["name"]: m for m in (await client.get("/info")).json()["models"]}
        assert {m["runtime"] for m in info.values()} == {"openvino"}
        assert {info[name]["dtype"] for name in ("int8", "classify-int8")} == {"int8"}
        assert {info[name]["dtype"] for name in ("pruned", "student", "sparse", "half")} == {dtype}
        for name in info:
            assert info[name]["drift"]["min_cosine"] > 0.5  # the same model, not noise
            route = "/classify" if name.startswith("classify") else "/embed"
            response = await client.post(route, json={"inputs": TEXTS, "model": name})
            assert response.status_code == 200


async def test_load_time_int8_quantization_reports_drift_against_float32(
    make_settings: Callable[..., Settings], tiny_embedder: Path
) -> None:
    models = [
        {"name": "fp32", "source": str(tiny_embedder)},
        {"name": "q8", "source": str(tiny_embedder), "quantize": "int8", "min_cosine": 0.9},
    ]
    app = create_app(_settings(make_settings, models))
    async for client in started_client(app):
        info = {m["name"]: m for m in (await client.get("/info")).json()["models"]}
        assert info["q8"]["dtype"] == "int8"
        assert info["q8"]["drift"]["reference"] == "float32"
        assert info["q8"]["drift"]["min_cosine"] >= 0.9
        assert info["fp32"]["drift"] is None
        fp32 = np.array((await client.post("/embed", json={"inputs": TEXTS, "model": "fp32"})).json())
        q8 = np.array((await client.post("/embed", json={"inputs": TEXTS, "model": "q8"})).json())
        assert not np.array_equal(fp32, q8)  # really a different graph
        assert (fp32 * q8).sum(axis=1).min() >= 0.9


def test_a_drift_floor_refuses_to_start(
    make_settings: Callable[..., Settings], variants: dict[str, Path]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from service.engine.registry import ModelRegistry

    models = [{"name": "pruned", "source": str(variants["pruned"]), "min_cosine": 0.99999}]
    with ThreadPoolExecutor(1) as pool:
        registry = ModelRegistry(_settings(make_settings, models), pool)
        with pytest.raises(ModelLoadError, match=r"drift against base .* too large"):
            registry.load_all()


def test_int8_variant_refuses_the_torch_runtime(
    make_settings: Callable[..., Settings], variants: dict[str, Path]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from service.engine.registry import ModelRegistry

    models = [{"name": "int8", "source": str(variants["int8"]), "runtime": "torch"}]
    with ThreadPoolExecutor(1) as pool:
        registry = ModelRegistry(_settings(make_settings, models), pool)
        with pytest.raises(ModelLoadError, match=r"model .int8.*runs on CPU only, on ONNX Runtime or"):
            registry.load_all()
