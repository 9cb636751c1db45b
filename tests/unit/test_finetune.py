"""Unit tests for models.training.finetune on a tiny randomly initialised BERT (seconds, offline)."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from models.runtime.builtins import minilm_path
from models.runtime.errors import ModelLoadError
from models.training.data import LabeledText
from models.training.errors import TrainingError
from models.training.finetune import (
    FINETUNE_METADATA,
    FinetuneConfig,
    evaluate_accuracy,
    finetune_classifier,
)
from models.training.loop import length_bucketed_batches
from tests.conftest import build_tiny_embedder

pytestmark = pytest.mark.unit

POSITIVE = ["great", "wonderful", "superb", "delightful", "brilliant", "moving"]
NEGATIVE = ["awful", "terrible", "boring", "dreadful", "clumsy", "tedious"]
FILLERS = ["the film was", "honestly this movie is", "a", "what a", "overall"]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random BERT with MiniLM's tokenizer and a sentence-transformers layout."""
    base = build_tiny_embedder(tmp_path_factory.mktemp("tiny_bert"), max_position_embeddings=128)
    # a sentence-transformers file that must not leak into the classifier folder
    shutil.copy(minilm_path() / "modules.json", base / "modules.json")
    return base


def _synthetic(n: int, seed: int) -> list[LabeledText]:
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        label = i % 2
        word = rng.choice(POSITIVE if label else NEGATIVE)
        examples.append(LabeledText(f"{rng.choice(FILLERS)} {word} {i}", label))
    return examples


def _config(**overrides: object) -> FinetuneConfig:
    base = FinetuneConfig(
        epochs=8,
        learning_rate=3e-3,
        warmup_ratio=0.1,
        batch_size=4,
        grad_accumulation=2,
        max_length=16,
        seed=13,
        max_train_examples=None,
        threads=1,
        eval_batch_size=16,
        bf16=False,
        freeze_embeddings=False,  # random frozen embeddings learn too slowly for a unit test
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def _run(base: Path, out: Path, home: Path, **overrides: object) -> float:
    result = finetune_classifier(
        base,
        out,
        home,
        _config(**overrides),
        progress=False,
        train=_synthetic(48, seed=1),
        heldout=_synthetic(24, seed=2),
    )
    assert result.out_dir == out
    assert result.train_examples == 48
    assert result.heldout_examples == 24
    assert result.seconds > 0
    return result.heldout_accuracy


def test_finetune_writes_loadable_classifier(tiny_base: Path, tmp_path: Path) -> None:
    out = tmp_path / "clf"
    accuracy = _run(tiny_base, out, tmp_path / "home")
    assert 0.0 <= accuracy <= 1.0
    assert accuracy >= 0.9, "a trivially separable task must be learned"
    model = AutoModelForSequenceClassification.from_pretrained(out, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert model.config.label2id == {"negative": 0, "positive": 1}
    assert (out / "model.safetensors").is_file()
    assert not (out / "modules.json").exists()
    assert not (out / "1_Pooling").exists()
    meta = json.loads((out / FINETUNE_METADATA).read_text())
    assert meta["heldout_accuracy"] == pytest.approx(accuracy)
    assert 0.0 <= meta["heldout_accuracy"] <= 1.0
    assert meta["train_examples"] == 48
    assert meta["heldout_examples"] == 24
    assert meta["config"]["seed"] == 13
    assert meta["torch_version"] == torch.__version__
    reloaded = evaluate_accuracy(model, tokenizer, _synthetic(24, seed=2), 16, 16)
    assert reloaded == pytest.approx(accuracy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"], "temp dir left behind"


def test_finetune_is_deterministic(tiny_base: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    _run(tiny_base, tmp_path / "a", home, epochs=1, bf16=True)
    _run(tiny_base, tmp_path / "b", home, epochs=1, bf16=True)
    _run(tiny_base, tmp_path / "c", home, epochs=1, bf16=True, seed=14)
    first = load_file(str(tmp_path / "a" / "model.safetensors"))
    second = load_file(str(tmp_path / "b" / "model.safetensors"))
    other = load_file(str(tmp_path / "c" / "model.safetensors"))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_freeze_embeddings_keeps_word_embeddings(tiny_base: Path, tmp_path: Path) -> None:
    key = "bert.embeddings.word_embeddings.weight"
    base = load_file(str(tiny_base / "model.safetensors"))
    base_key = next(k for k in base if k.endswith("word_embeddings.weight"))
    _run(tiny_base, tmp_path / "frozen", tmp_path, epochs=1, freeze_embeddings=True)
    _run(tiny_base, tmp_path / "free", tmp_path, epochs=1, freeze_embeddings=False)
    frozen = load_file(str(tmp_path / "frozen" / "model.safetensors"))
    free = load_file(str(tmp_path / "free" / "model.safetensors"))
    assert torch.equal(frozen[key], base[base_key])
    assert not torch.equal(free[key], base[base_key])
    assert not torch.equal(frozen["classifier.weight"], free["classifier.weight"])


def test_finetune_refuses_existing_out_dir_unless_overwrite(tiny_base: Path, tmp_path: Path) -> None:
    out = tmp_path / "clf"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(TrainingError):
        _run(tiny_base, out, tmp_path / "home", epochs=1)
    assert (out / "keep.txt").exists()
    finetune_classifier(
        tiny_base,
        out,
        tmp_path / "home",
        _config(epochs=1),
        progress=False,
        train=_synthetic(16, seed=1),
        heldout=_synthetic(8, seed=2),
        overwrite=True,
    )
    assert not (out / "keep.txt").exists()
    assert (out / FINETUNE_METADATA).is_file()


def test_finetune_rejects_bad_inputs(tiny_base: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError):
        _run(tiny_base, tmp_path / "x", tmp_path, batch_size=0)
    with pytest.raises(TrainingError):
        finetune_classifier(
            tiny_base,
            tmp_path / "y",
            tmp_path,
            _config(),
            progress=False,
            train=[LabeledText("odd", 5)],
            heldout=_synthetic(4, seed=2),
        )
    with pytest.raises(ModelLoadError):
        _run(tmp_path / "missing", tmp_path / "z", tmp_path)
    assert not any(p.name.startswith((".x", ".y", ".z", "x", "y", "z")) for p in tmp_path.iterdir())


def test_length_bucketed_batches_cover_all_and_group_lengths() -> None:
    rng = random.Random(3)
    lengths = [rng.randint(3, 60) for _ in range(103)]
    batches = length_bucketed_batches(lengths, 10, random.Random(0))
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(103))
    assert [len(b) for b in batches].count(10) == 10
    spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert sum(spans) <= max(lengths) - min(lengths), "batches must be length sorted"
    assert len({tuple(b) for b in batches}) == len(batches)
    assert batches != sorted(batches, key=lambda b: lengths[b[0]]), "order is shuffled"
    again = length_bucketed_batches(lengths, 10, random.Random(0))
    assert batches == again


def test_finetune_reranker_writes_a_one_label_cross_encoder(tiny_base: Path, tmp_path: Path) -> None:
    from models.training.data import StsPair
    from models.training.rerank import RERANK_LABEL, finetune_reranker

    rng = random.Random(3)
    words = POSITIVE + NEGATIVE + FILLERS
    pairs = []
    for i in range(64):
        text = " ".join(rng.sample(words, 3))
        pairs.append(StsPair(text, text if i % 2 else " ".join(rng.sample(words, 3)), 5.0 if i % 2 else 0.0))
    out = tmp_path / "reranker"
    config = _config(max_length=32)
    result = finetune_reranker(tiny_base, out, tmp_path, config, progress=False, train=pairs, dev=pairs[:16])
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1
    assert model.config.id2label == {0: RERANK_LABEL}
    meta = json.loads((out / FINETUNE_METADATA).read_text())
    assert meta["task"] == "rerank"
    assert meta["train_examples"] == 128  # both orders of every pair
    # Identical sentences versus random ones: even a tiny model learns to tell them apart.
    assert result.heldout_accuracy == meta["heldout_spearman"] > 0.5
    with pytest.raises(TrainingError, match="already exists"):
        finetune_reranker(tiny_base, out, tmp_path, config, progress=False, train=pairs, dev=pairs[:16])
