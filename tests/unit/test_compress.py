"""The compression recipes on tiny random BERTs without datasets (real tokenizer, seconds); the recipes that
train or calibrate on the real datasets are in ``tests/integration/test_recipes.py``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from models.runtime.folders import describe_model
from models.runtime.structure import encoder_layers, layer_shapes
from models.runtime.tokenization import TextTokenizer
from models.runtime.torch_backend import TorchBackend, load_module
from models.training.cli import add_commands, run
from models.training.errors import TrainingError
from models.training.evaluate import spearman
from models.training.prune import (
    apply_selection,
    prune_magnitude,
    random_importance,
    select_units,
)
from models.training.quantize import quantize_dtype
from tests.conftest import build_tiny_embedder

pytestmark = pytest.mark.unit

SENTENCES = [
    "A man is playing a guitar.",
    "The quarterly report shows revenue growth of twelve percent year over year.",
    "Two dogs run through a field.",
    "Is it safe to take ibuprofen and paracetamol at the same time?",
]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT embedder with 4 heads of 8 and 37 FFN neurons, mean pooling."""
    return build_tiny_embedder(tmp_path_factory.mktemp("four-heads"), seed=3, num_attention_heads=4)


def rows_of(model: torch.nn.Module, folder: Path) -> np.ndarray:
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
    np.testing.assert_allclose(rows_of(pruned, base), rows_of(reference, base), atol=1e-5)
    assert not np.allclose(rows_of(model, base), rows_of(reference, base), atol=1e-3)  # pruning changed it


def test_select_units_keeps_the_best_globally_with_a_floor_per_layer() -> None:
    scores = [torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([0.1, 0.05, 0.2, 0.01])]
    assert select_units(scores, 0.5, minimum=0) == [[0, 1, 2], [2]]
    with pytest.raises(TrainingError):
        select_units(scores, 0.0, minimum=0)


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
    model = load_module(describe_model(base), "cpu", torch.float32)
    half = load_module(describe_model(tmp_path / "fp16"), "cpu", torch.float32)
    reference, rows = rows_of(model, base), rows_of(half, tmp_path / "fp16")
    assert not np.array_equal(rows, reference)  # the weights were really rounded to float16
    np.testing.assert_allclose(rows, reference, rtol=0, atol=5e-3)  # and still compute the same model


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
