"""The shared training loop's parts: parameter groups, step plan, publishing a folder, the CLI's errors."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from models.runtime.devices import default_threads
from models.training.errors import TrainingError
from models.training.loop import TrainingConfig, optimizer_steps, parameter_groups, publishing, train
from service.cli import main
from service.settings import Settings
from tests.conftest import TINY, build_tiny_embedder

pytestmark = pytest.mark.unit

_CONFIG = TrainingConfig(epochs=2, batch_size=4, grad_accumulation=3)


def test_weight_decay_skips_biases_and_layernorm_weights_only() -> None:
    model = BertForSequenceClassification(BertConfig(**TINY, num_labels=2))
    model.get_input_embeddings().weight.requires_grad_(False)
    decay, plain = parameter_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    plain_names = {names[id(p)] for p in plain["params"]}
    decay_names = {names[id(p)] for p in decay["params"]}
    assert (decay["weight_decay"], plain["weight_decay"]) == (0.01, 0.0)
    assert plain_names == {n for n, _ in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n}
    assert {"classifier.weight", "bert.embeddings.position_embeddings.weight"} <= decay_names
    assert "bert.embeddings.word_embeddings.weight" not in decay_names | plain_names  # frozen: no group


def test_steps_cover_every_example_once_per_epoch_and_are_seeded() -> None:
    lengths = [5, 9, 3, 7, 7, 2, 11, 4, 6, 8, 1]
    steps = optimizer_steps(lengths, _CONFIG)
    per_epoch = len(steps) // 2
    assert per_epoch == 1  # 3 batches of at most 4, accumulated 3 to a step
    for epoch in (steps[:per_epoch], steps[per_epoch:]):
        assert sorted(i for step in epoch for batch in step for i in batch) == list(range(len(lengths)))
    assert steps == optimizer_steps(lengths, _CONFIG)
    assert steps != optimizer_steps(lengths, replace(_CONFIG, seed=14))


def _failing_build(target: Path) -> None:
    with publishing(target, overwrite=True) as scratch:
        (scratch / "new.txt").write_text("new")
        raise RuntimeError("the build failed")


def test_publishing_replaces_the_target_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="build failed"):
        _failing_build(target)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no scratch folder left behind
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with publishing(target, overwrite=True) as scratch:
        (scratch / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert target.stat().st_mode & 0o777 == 0o755  # readable by the server's user


def test_publishing_refuses_an_existing_target_without_overwrite(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="already exists"), publishing(tmp_path, overwrite=False):
        pass


def test_cli_reports_an_existing_variant_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = build_tiny_embedder(tmp_path / "base")
    capsys.readouterr()  # the fixture's own progress output
    out = tmp_path / "taken"
    out.mkdir()
    command = ["models", "prune", str(base), "--method", "magnitude", "--out", str(out), "--no-progress"]
    assert main(command) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"bertserve: {out} already exists")
    assert err.count("\n") == 1  # one line, no traceback
    assert list(out.iterdir()) == []


def test_one_default_thread_count_for_serving_and_training() -> None:
    assert default_threads() == (os.cpu_count() or 1)
    assert Settings(threads=0).inference_threads == default_threads()
    assert Settings(threads=3).inference_threads == 3


def test_frozen_layers_stay_put_and_the_rest_trains() -> None:
    """frozen_layers: the embedding block and the lowest layers keep their weights; higher layers and the
    head train; afterwards every parameter is trainable again."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**TINY, num_labels=1))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    ids = torch.randint(5, model.config.vocab_size, (8, 6))

    def forward(batch: list[int]) -> torch.Tensor:
        logits: torch.Tensor = model(input_ids=ids[batch]).logits
        return logits.float().pow(2).mean()

    config = TrainingConfig(epochs=1, batch_size=4, learning_rate=1e-2, bf16=False, frozen_layers=1)
    train(model, [6] * 8, forward, config)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert not {n for n in changed if ".embeddings." in n or ".layer.0." in n}
    assert any(".layer.1." in n for n in changed)
    assert "classifier.weight" in changed
    assert all(p.requires_grad for p in model.parameters())
