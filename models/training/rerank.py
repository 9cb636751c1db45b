"""Fine-tune a BERT encoder folder into a cross-encoder reranker (the ``rerank`` task of the fine-tune).

A reranker is a sequence classifier with one label: it reads ``[CLS] query [SEP] document [SEP]`` and
returns one logit, whose sigmoid is the relevance. It is trained on the STS-B train pairs (in both
orders: the relation is symmetric) with their gold score / 5 as the target of a binary cross-entropy on
the logit, so the sigmoid of the logit estimates the normalised similarity, as sentence-transformers'
CrossEncoder does; the training loop is the pipeline's one (:func:`models.training.loop.train`). The
held-out figure is the STS-B dev Spearman correlation of the pair scores, written to ``finetune.json``
in the model folder; the test split is never seen.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from models.runtime.inference import length_sorted_chunks
from models.training import loop
from models.training.data import StsPair, load_sts
from models.training.errors import TrainingError
from models.training.evaluate import spearman
from models.training.finetune import (
    FinetuneConfig,
    FinetuneResult,
    _transformers_progress,
    load_base_classifier,
    save_model,
)

RERANK_LABEL = "relevance"
"""The one label of a reranker (any one-label classifier is served as a reranker)."""

#: Tokenized pairs: per pair its ids and token type ids.
Pairs = tuple[list[list[int]], list[list[int]]]


def rerank_config() -> FinetuneConfig:
    """The default recipe: 2 epochs over a seeded random 5,200 of the 5,749 STS-B train pairs in both
    orders (650 steps of 32), the embeddings and the 2 lowest of 6 layers frozen. Both cuts make the build
    fit in 3 minutes on 2 cores (234 s -> 167 s); the blended scores of the default reranker lose 0.0034
    STS-B test Spearman for them (benchmarks/RESULTS.md)."""
    return FinetuneConfig(
        epochs=2,
        learning_rate=8e-5,
        batch_size=32,
        max_length=128,
        frozen_layers=2,
        max_train_examples=5200,
    )


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]], max_length: int
) -> Pairs:
    """Tokenize text pairs (``[CLS] a [SEP] b [SEP]``, token types 0 then 1), cut longest-first."""
    encoded = tokenizer(
        [a for a, _ in pairs], [b for _, b in pairs], truncation="longest_first", max_length=max_length
    )
    return [list(ids) for ids in encoded["input_ids"]], [list(t) for t in encoded["token_type_ids"]]


def collate_pairs(pairs: Pairs, indices: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """The model's keyword tensors for the pairs at ``indices``, right-padded to the longest."""
    ids, types = pairs
    width = max(len(ids[i]) for i in indices)
    input_ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    type_ids = torch.zeros((len(indices), width), dtype=torch.long)
    mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        input_ids[row, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
        type_ids[row, : len(ids[i])] = torch.tensor(types[i], dtype=torch.long)
        mask[row, : len(ids[i])] = 1
    return {"input_ids": input_ids, "token_type_ids": type_ids, "attention_mask": mask}


def pair_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[tuple[str, str]],
    batch_size: int,
    max_length: int,
) -> np.ndarray:
    """The model's logit for each pair, in order (length-sorted batches, inference mode, float32)."""
    encoded = encode_pairs(tokenizer, pairs, max_length)
    scores = np.empty(len(pairs), dtype=np.float32)
    pad_id = int(tokenizer.pad_token_id or 0)
    model.eval()
    with torch.inference_mode():
        for chunk in length_sorted_chunks([len(x) for x in encoded[0]], batch_size):
            scores[chunk] = model(**collate_pairs(encoded, chunk, pad_id)).logits[:, 0].float().numpy()
    return scores


def _train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: list[StsPair],
    config: FinetuneConfig,
    progress: bool,
) -> tuple[float, int]:
    """Train on ``train`` in both orders; returns the last epoch's mean loss and the examples seen."""
    texts = [(p.sentence1, p.sentence2) for p in train] + [(p.sentence2, p.sentence1) for p in train]
    targets = torch.tensor([p.score / 5.0 for p in train] * 2, dtype=torch.float32)
    encoded = encode_pairs(tokenizer, texts, config.max_length)
    pad_id = int(tokenizer.pad_token_id or 0)

    def forward(batch: list[int]) -> torch.Tensor:
        logits: torch.Tensor = model(**collate_pairs(encoded, batch, pad_id)).logits
        return logits

    def objective(logits: torch.Tensor, batch: list[int]) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float()[:, 0], targets[batch])

    label = "finetune rerank" if progress else None
    losses = loop.train(model, [len(x) for x in encoded[0]], forward, config, objective, progress=label)
    per_epoch = len(losses) // config.epochs
    return sum(losses[-per_epoch:]) / per_epoch, len(texts)


def _train_and_save(
    base_dir: Path,
    folder: Path,
    splits: tuple[list[StsPair], list[StsPair]],
    config: FinetuneConfig,
    progress: bool,
) -> dict[str, Any]:
    train, dev = splits
    config = replace(config, bf16=loop.use_bf16(config.bf16))
    loop.set_seed(config.seed)  # before the new head is initialised
    tokenizer, model = load_base_classifier(base_dir, [RERANK_LABEL])
    loss, examples = _train(model, tokenizer, train, config, progress)
    dev_scores = pair_scores(
        model, tokenizer, [(p.sentence1, p.sentence2) for p in dev], 128, config.max_length
    )
    meta = {
        "task": "rerank",
        "base": str(base_dir),
        "config": asdict(config),
        "labels": [RERANK_LABEL],
        "train_examples": examples,
        "heldout_examples": len(dev),
        "heldout": "STS-B dev",
        "heldout_spearman": round(spearman(dev_scores.tolist(), [p.score for p in dev]), 4),
        "train_loss": loss,
    }
    save_model(model, tokenizer, folder, meta)
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
    success (written to a scratch sibling, then renamed).
    """
    start = time.perf_counter()
    loop.check_target(out_dir, overwrite)
    train_list = list(train if train is not None else load_sts("train", home))
    dev_list = list(dev if dev is not None else load_sts("dev", home))
    if config.max_train_examples is not None and config.max_train_examples < len(train_list):
        # A seeded random sample, not the first N: STS-B train is ordered by genre.
        train_list = random.Random(config.seed).sample(train_list, config.max_train_examples)
    if not train_list or len(dev_list) < 2:
        raise TrainingError("reranker fine-tuning needs train pairs and at least two dev pairs")
    with (
        loop.torch_threads(config.threads),
        _transformers_progress(progress),
        loop.publishing(out_dir, overwrite) as scratch,
    ):
        meta = _train_and_save(base_dir, scratch, (train_list, dev_list), config, progress)
    seconds = time.perf_counter() - start
    return FinetuneResult(out_dir, meta["heldout_spearman"], meta["train_examples"], len(dev_list), seconds)
