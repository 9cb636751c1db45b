"""Shared fixtures: tiny randomly initialised BERT folders (real tokenizer, fake weights)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import settings as hypothesis_settings
from transformers import BertConfig, BertForSequenceClassification, BertModel

from models.runtime.builtins import minilm_path
from tests.redis_server import RedisServer

# CI runs the property tests with a fixed seed (a red CI must be reproducible); locally they explore.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

#: Every test carries exactly one of these (a module-level ``pytestmark``): ``-m`` selects by them.
#: ``gpu`` tests need CUDA (skipped without it) and run on a lent GPU by ``benchmarks/gpu/run.sh``.
TEST_LEVELS = ("unit", "integration", "e2e", "gpu")


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects: an unmarked test must not vanish silently
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse to run when a collected test has no level marker, or more than one."""
    wrong = sorted({item.nodeid.split("::")[0] for item in items if len(_levels(item)) != 1})
    if wrong:
        raise pytest.UsageError(f"tests need exactly one marker of {TEST_LEVELS} (pytestmark): {wrong}")


def _levels(item: pytest.Item) -> set[str]:
    return {mark.name for mark in item.iter_markers()} & set(TEST_LEVELS)


TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
    "max_position_embeddings": 64,
}
CLASSIFIER_LABELS = ("negative", "neutral", "positive")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def copy_tokenizer(target: Path) -> None:
    """Give ``target`` the real all-MiniLM-L6-v2 tokenizer."""
    for name in _TOKENIZER_FILES:
        shutil.copy(minilm_path() / name, target / name)


def build_tiny_embedder(target: Path, seed: int = 0, pooling: str = "mean", **config: int) -> Path:
    """A 2-layer BERT with random weights, saved as a sentence-transformers-style folder; ``config``
    overrides the :data:`TINY` shape (heads, FFN width, positions)."""
    torch.manual_seed(seed)
    BertModel(BertConfig(**{**TINY, **config})).save_pretrained(target, safe_serialization=True)
    copy_tokenizer(target)
    (target / "1_Pooling").mkdir()
    (target / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": TINY["hidden_size"],
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_cls_token": pooling == "cls",
            }
        )
    )
    return target


def build_tiny_classifier(target: Path, seed: int = 1) -> Path:
    """A 2-layer BERT sequence classifier with three labels and random weights."""
    torch.manual_seed(seed)
    config = BertConfig(
        **TINY,
        num_labels=len(CLASSIFIER_LABELS),
        id2label=dict(enumerate(CLASSIFIER_LABELS)),
        label2id={label: i for i, label in enumerate(CLASSIFIER_LABELS)},
    )
    BertForSequenceClassification(config).save_pretrained(target, safe_serialization=True)
    copy_tokenizer(target)
    return target


def build_tiny_reranker(target: Path, seed: int = 2) -> Path:
    """A 2-layer BERT cross-encoder: a sequence classifier with one label (a relevance logit)."""
    torch.manual_seed(seed)
    config = BertConfig(**TINY, num_labels=1, id2label={0: "relevance"}, label2id={"relevance": 0})
    BertForSequenceClassification(config).save_pretrained(target, safe_serialization=True)
    copy_tokenizer(target)
    return target


@pytest.fixture(scope="session")
def tiny_reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random one-label classifier (a reranker)."""
    return build_tiny_reranker(tmp_path_factory.mktemp("tiny-reranker"))


@pytest.fixture(scope="session")
def tiny_embedder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random embedder (mean pooling, 64 token positions)."""
    return build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder"))


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random three-label classifier."""
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny-classifier"))


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server on a free port, stopped after the test."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def other_embedder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny embedder with different random weights."""
    return build_tiny_embedder(tmp_path_factory.mktemp("other-embedder"), seed=5)
