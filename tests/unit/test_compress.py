"""The compression pipeline end to end on tiny random BERTs (real tokenizer, real data, seconds)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from models.runtime.builtins import default_home
from models.runtime.errors import ModelLoadError
from models.runtime.factory import create_backend
from models.runtime.folders import describe_model
from models.runtime.int8 import Int8Targets, weight_matmuls
from models.runtime.structure import encoder_layers, layer_shapes
from models.runtime.tokenization import TextTokenizer
from models.runtime.torch_backend import TorchBackend, load_module
from models.training.cli import add_commands, run
from models.training.distill import distill, make_student, spread_layers
from models.training.distillation import DistillConfig
from models.training.errors import TrainingError
from models.training.evaluate import evaluate, spearman
from models.training.prune import (
    apply_selection,
    prune_magnitude,
    prune_structured,
    random_importance,
    select_units,
)
from models.training.quantize import quantize_dtype, quantize_int8
from models.training.report import write_report
from tests.conftest import build_tiny_embedder

SENTENCES = [
    "A man is playing a guitar.",
    "The quarterly report shows revenue growth of twelve percent year over year.",
    "Two dogs run through a field.",
    "Is it safe to take ibuprofen and paracetamol at the same time?",
]
QUICK = DistillConfig(epochs=1, max_texts=64, batch_size=16, threads=2)


@pytest.fixture(scope="module")
def home() -> Path:
    """The real data directory (STS-B and Rotten Tomatoes are fetched once and verified by sha256)."""
    return default_home()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT embedder with 4 heads of 8 and 37 FFN neurons, mean pooling."""
    return build_tiny_embedder(tmp_path_factory.mktemp("four-heads"), seed=3, num_attention_heads=4)


def _rows(model: torch.nn.Module, folder: Path) -> np.ndarray:
    description = describe_model(folder)
    backend = TorchBackend(description, "cpu", "float32")
    backend.model = model.eval()
    tokenizer = TextTokenizer.from_folder(folder, 64)
    return backend.forward(tokenizer.collate(tokenizer.encode(SENTENCES, truncate=True)))


def _masked_reference(
    model: torch.nn.Module, heads: list[list[int]], neurons: list[list[int]]
) -> torch.nn.Module:
    """The unpruned model with the dropped heads' and neurons' outputs zeroed (their weights kept)."""
    masked = copy.deepcopy(model)
    with torch.no_grad():
        for layer, keep_h, keep_n in zip(encoder_layers(masked), heads, neurons, strict=True):
            size = layer.attention.self.attention_head_size
            for head in set(range(layer.attention.self.query.out_features // size)) - set(keep_h):
                layer.attention.output.dense.weight[:, head * size : (head + 1) * size] = 0
            for neuron in set(range(layer.intermediate.dense.out_features)) - set(keep_n):
                layer.output.dense.weight[:, neuron] = 0
    return masked


def test_structured_pruning_shrinks_matrices_and_equals_the_masked_model(base: Path) -> None:
    model = load_module(describe_model(base), "cpu", torch.float32)
    head_scores, neuron_scores = random_importance(model, seed=1)
    heads = select_units(head_scores, 0.5, minimum=0)
    neurons = select_units(neuron_scores, 0.5, minimum=1 / 16)
    reference = _masked_reference(model, heads, neurons)
    pruned = copy.deepcopy(model)
    apply_selection(pruned, heads, neurons)
    shapes = layer_shapes(pruned)
    assert sum(s.heads for s in shapes) == 4
    assert sum(s.intermediate for s in shapes) == 37
    for layer, shape in zip(encoder_layers(pruned), shapes, strict=True):
        assert layer.attention.self.query.weight.shape == (shape.heads * 8, 32)
        assert layer.attention.output.dense.weight.shape == (32, shape.heads * 8)
        assert layer.intermediate.dense.weight.shape == (shape.intermediate, 32)
        assert layer.output.dense.weight.shape == (32, shape.intermediate)
    np.testing.assert_allclose(_rows(pruned, base), _rows(reference, base), atol=1e-5)
    assert not np.allclose(_rows(model, base), _rows(reference, base), atol=1e-3)  # pruning changed something


def test_select_units_keeps_the_best_globally_with_a_floor_per_layer() -> None:
    scores = [torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([0.1, 0.05, 0.2, 0.01])]
    assert select_units(scores, 0.5, minimum=0) == [[0, 1, 2], [2]]
    with pytest.raises(TrainingError):
        select_units(scores, 0.0, minimum=0)


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
    torch_rows = _rows(load_module(description, "cpu", torch.float32), tmp_path / "pruned")
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
    assert not (tmp_path / "int8" / "model.safetensors").exists()
    assert len(weight_matmuls(description.weights)) == len(report["kept_float32"])  # the rest are int8 now
    backend, runtime = create_backend(description, "auto", "cpu", "float32", "none", tmp_path / "onnx", 2)
    assert (runtime, backend.dtype) == ("onnx", "int8")
    with pytest.raises(ModelLoadError, match="ONNX Runtime on CPU only"):
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


def test_magnitude_pruning_zeroes_weights_but_keeps_shapes(base: Path, tmp_path: Path) -> None:
    prune_magnitude(base, tmp_path / "sparse", 0.5)
    model = load_module(describe_model(tmp_path / "sparse"), "cpu", torch.float32)
    weight = encoder_layers(model)[0].intermediate.dense.weight
    assert weight.shape == (37, 32)
    assert 0.45 <= float((weight == 0).float().mean()) <= 0.55


def test_half_precision_variant_stores_half_weights(base: Path, tmp_path: Path) -> None:
    quantize_dtype(base, tmp_path / "fp16", "float16")
    with safe_open(str(tmp_path / "fp16" / "model.safetensors"), framework="pt") as handle:
        assert all(handle.get_tensor(key).dtype == torch.float16 for key in handle.keys())  # noqa: SIM118
    assert TorchBackend(describe_model(tmp_path / "fp16"), "cpu", "float32").forward is not None


def test_eval_and_report_measure_every_variant_against_the_base(
    base: Path, home: Path, tmp_path: Path
) -> None:
    quantize_int8(base, tmp_path / "int8", home, Int8Targets(min_mean_cosine=0.9, min_cosine=0.5))
    results = evaluate(base, {"int8": tmp_path / "int8"}, home, rounds=1, threads=2, progress=False)
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
    assert "| int8 | quantize-int8 | onnx/int8 |" in table.read_text()
    assert image.read_bytes().startswith(b"\x89PNG")


def test_spearman_matches_scipy_with_ties() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    a, b = [1, 2, 2, 3, 5, 4], [0.1, 0.3, 0.2, 0.2, 0.9, 0.5]
    assert spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a, b).statistic)


def test_cli_builds_a_variant(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_commands(parser)
    args = parser.parse_args(
        [
            "prune",
            str(base),
            "--method",
            "magnitude",
            "--sparsity",
            "0.3",
            "--out",
            str(tmp_path / "cli"),
            "--no-progress",
        ]
    )
    assert run(args) == 0
    assert json.loads(capsys.readouterr().out)["recipe"] == "prune-magnitude"
    assert (tmp_path / "cli" / "variant.json").is_file()
