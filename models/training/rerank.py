"""Fine-tune a BERT encoder folder into a cross-encoder reranker (the ``rerank`` task of the fine-tune).

A reranker is a sequence classifier with one label: it reads ``[CLS] query [SEP] document [SEP]`` and
returns one logit, whose sigmoid is the relevance. It is trained on the STS-B train pairs with their gold
score / 5 as the target of a binary cross-entropy on the logit (so the sigmoid of the logit estimates the
normalised similarity, as sentence-transformers' CrossEncoder does), with the fine-tune's training loop
(:func:`models.training.finetune.train_loop`). The held-out figure is the STS-B dev Spearman correlation
of the pair scores, written to ``finetune.json`` in the model folder; the test split is never seen.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from models.runtime.errors import ModelLoadError
from models.training.data import StsPair, load_sts
from models.training.errors import TrainingError
from models.training.evaluate import spearman
from models.training.finetune import (
    Encoded,
    FinetuneConfig,
    FinetuneResult,
    _collate,
    _publish,
    _transformers_progress,
    native_bf16_available,
    save_model,
    set_seed,
    train_loop,
)

RERANK_LABEL = "relevance"
"""The one label of a reranker (any one-label classifier is served as a reranker)."""


def rerank_config() -> FinetuneConfig:
    """The default recipe: 2 epochs over the STS-B train pairs in both orders (720 steps of 32)."""
    return FinetuneConfig(epochs=2, learning_rate=8e-5, batch_size=32, max_length=128)


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]], max_length: int
) -> Encoded:
    """Tokenize text pairs (``[CLS] a [SEP] b [SEP]``, token types 0 then 1), cut longest-first."""
    encoded = tokenizer(
        [a for a, _ in pairs], [b for _, b in pairs], truncation="longest_first", max_length=max_length
    )
    return Encoded([list(ids) for ids in encoded["input_ids"]], [list(t) for t in encoded["token_type_ids"]])


def _bce_on_sigmoid(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.squeeze(-1), targets)


def pair_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[tuple[str, str]],
    batch_size: int,
    max_length: int,
) -> np.ndarray:
    """The model's logit for each pair, in order (length-sorted batches, inference mode)."""
    encoded = encode_pairs(tokenizer, pairs, max_length)
    assert encoded.type_ids is not None
    order = sorted(range(len(pairs)), key=lambda i: len(encoded.ids[i]))
    scores = np.empty(len(pairs), dtype=np.float32)
    pad_id = int(tokenizer.pad_token_id or 0)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            inputs = _collate([encoded.ids[i] for i in chunk], pad_id, [encoded.type_ids[i] for i in chunk])
            scores[chunk] = model(**inputs).logits[:, 0].float().numpy()
    return scores


def _pairs(split: Sequence[StsPair]) -> list[tuple[str, str]]:
    return [(p.sentence1, p.sentence2) for p in split]


def _train_and_save(
    base_dir: Path,
    tmp_dir: Path,
    splits: tuple[Sequence[StsPair], Sequence[StsPair]],
    config: FinetuneConfig,
    progress: bool,
) -> dict[str, Any]:
    train, dev = list(splits[0]), list(splits[1])
    if config.max_train_examples is not None:
        train = train[: config.max_train_examples]
    config = replace(config, bf16=native_bf16_available() if config.bf16 is None else config.bf16)
    set_seed(config.seed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        model = AutoModelForSequenceClassification.from_pretrained(
            base_dir,
            num_labels=1,
            id2label={0: RERANK_LABEL},
            label2id={RERANK_LABEL: 0},
            use_safetensors=True,
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load base model from {base_dir}: {exc}") from exc
    if config.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    # Both orders of every pair: the relation is symmetric, and it doubles the data for free.
    pairs = _pairs(train) + [(b, a) for a, b in _pairs(train)]
    targets = torch.tensor([p.score / 5.0 for p in train] * 2, dtype=torch.float32)
    encoded = encode_pairs(tokenizer, pairs, config.max_length)
    loss = train_loop(
        model, (encoded, targets), config, int(tokenizer.pad_token_id or 0), progress, _bce_on_sigmoid
    )
    dev_scores = pair_scores(model, tokenizer, _pairs(dev), config.eval_batch_size, config.max_length)
    meta = {
        "task": "rerank",
        "base": str(base_dir),
        "config": asdict(config),
        "labels": [RERANK_LABEL],
        "train_examples": len(pairs),
        "heldout_examples": len(dev),
        "heldout": "STS-B dev",
        "heldout_spearman": round(spearman(dev_scores.tolist(), [p.score for p in dev]), 4),
        "train_loss": loss,
    }
    save_model(model, tokenizer, tmp_dir, meta)
    return meta


def finetune_reranker(
    base_dir: Path,
    out_dir: Path,
    home: Path,
    config: FinetuneConfig,
    progress: bool = True,
    overwrite: bool = False,
    *,
    train: Sequence[StsPair] | None = None,
    dev: Sequence[StsPair] | None = None,
) -> FinetuneResult:
    """Fine-tune ``base_dir`` into a one-logit cross-encoder at ``out_dir``: on the STS-B train pairs
    (cached under ``home``) unless ``train`` / ``dev`` override them.

    ``FinetuneResult.heldout_accuracy`` holds the dev Spearman correlation. The folder appears only on
    success (written to a temporary sibling, then renamed).
    """
    start = time.perf_counter()
    if out_dir.exists() and not overwrite:
        raise TrainingError(f"{out_dir} already exists (pass overwrite=True)")
    splits = (
        train if train is not None else load_sts("train", home),
        dev if dev is not None else load_sts("dev", home),
    )
    if not splits[0] or len(splits[1]) < 2:
        raise TrainingError("reranker fine-tuning needs train pairs and at least two dev pairs")
    previous_threads = torch.get_num_threads()
    tmp_dir = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    try:
        torch.set_num_threads(config.threads)
        with _transformers_progress(progress):
            meta = _train_and_save(base_dir, tmp_dir, splits, config, progress)
        _publish(tmp_dir, out_dir, overwrite)
    finally:
        torch.set_num_threads(previous_threads)
        shutil.rmtree(tmp_dir, ignore_errors=True)
    seconds = time.perf_counter() - start
    return FinetuneResult(
        out_dir, meta["heldout_spearman"], meta["train_examples"], meta["heldout_examples"], seconds
    )
