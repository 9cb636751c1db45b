"""Knowledge distillation: train a student encoder to reproduce its teacher's outputs on unlabeled text.

Used by the ``distill`` recipe (a student with fewer layers) and as the recovery step of ``prune`` (the
pruned model learns back from the unpruned one). Embedding models match the teacher's pooled embeddings
(MSE plus a cosine term: MSE fixes the scale, cosine the direction that similarity search uses);
classifiers match its logits (KL divergence at a temperature, Hinton et al. 2015). The teacher's outputs
are computed once, in float32; the student trains in length-bucketed batches (little padding) under
bfloat16 autocast on CPUs with native bf16, with AdamW, linear warm-up and decay, gradient accumulation
and a fixed seed.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from tqdm import tqdm

from models.runtime.contract import EncoderBackend
from models.runtime.folders import ModelDescription
from models.runtime.pooling import pool
from models.runtime.tokenization import TextTokenizer, TokenizedText
from models.training.data import load_sts, sentiment_splits
from models.training.errors import TrainingError
from models.training.finetune import length_bucketed_batches, native_bf16_available, set_seed


def _default_threads() -> int:
    import os

    return os.cpu_count() or 1


@dataclass
class DistillConfig:
    """Hyper-parameters of :func:`distill_train`.

    Attributes:
        epochs: Passes over the unlabeled texts.
        learning_rate: Peak AdamW learning rate (after warm-up; then linear decay to zero).
        warmup_ratio: Fraction of optimizer steps in linear warm-up.
        weight_decay: AdamW weight decay (not on biases and LayerNorm weights).
        batch_size: Texts per forward/backward pass.
        grad_accumulation: Passes per optimizer step (effective batch = batch_size x this).
        max_length: Token truncation of the training texts.
        seed: Seeds torch, numpy, random and the batch order.
        temperature: Softmax temperature of the logit (KL) loss, classifiers only.
        cosine_weight: Weight of the (1 - cosine) term next to the MSE, embedding models only.
        max_texts: Optional cap on training texts (for quick runs and tests).
        freeze_embeddings: Keep the word-embedding matrix frozen (half of MiniLM's parameters: the
            optimizer skips them, and the student's vocabulary stays the teacher's).
        bf16: bfloat16 autocast for training passes; None = only where the CPU has native bf16.
        threads: torch intra-op threads.
    """

    epochs: int = 3
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    batch_size: int = 64
    grad_accumulation: int = 1
    max_length: int = 128
    seed: int = 13
    temperature: float = 2.0
    cosine_weight: float = 1.0
    max_texts: int | None = None
    freeze_embeddings: bool = True
    bf16: bool | None = None
    threads: int = field(default_factory=_default_threads)

    def settings(self) -> dict[str, Any]:
        """The configuration as recorded in ``variant.json`` (threads excluded: not part of the recipe)."""
        values = asdict(self)
        values.pop("threads")
        return values


@dataclass(frozen=True)
class TrainStats:
    """What a distillation run did."""

    steps: int
    texts: int
    first_loss: float
    last_loss: float
    seconds: float


def unlabeled_texts(home: Path) -> list[str]:
    """Training text for distillation: STS-B train sentences and the Rotten Tomatoes training split.

    Never the STS-B test split or the sentiment held-out split, which the evaluation scores.
    """
    texts = [text for pair in load_sts("train", home) for text in (pair.sentence1, pair.sentence2)]
    train, _ = sentiment_splits(home)
    texts += [example.text for example in train]
    return list(dict.fromkeys(text.strip() for text in texts if text.strip()))


def model_rows(
    module: torch.nn.Module, task: str, pooling: str, batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    """What the service returns before post-processing: pooled embeddings or logits."""
    output = module(**batch)
    if task == "classify":
        return output.logits
    return pool(output.last_hidden_state, batch["attention_mask"], pooling)


def _as_batch(
    tokenizer: TextTokenizer, items: Sequence[TokenizedText], token_types: bool
) -> dict[str, torch.Tensor]:
    inputs = tokenizer.collate(list(items))
    batch = {
        "input_ids": torch.from_numpy(inputs.input_ids),
        "attention_mask": torch.from_numpy(inputs.attention_mask),
    }
    if token_types:
        batch["token_type_ids"] = torch.from_numpy(inputs.token_type_ids)
    return batch


def teacher_rows(
    teacher: EncoderBackend,
    tokenizer: TextTokenizer,
    items: Sequence[TokenizedText],
    progress: bool = False,
) -> torch.Tensor:
    """The teacher's float32 rows for every item, from any backend (ONNX Runtime is the fastest on CPU)."""
    order = sorted(range(len(items)), key=lambda i: items[i].tokens)
    rows: torch.Tensor | None = None
    for start in tqdm(range(0, len(order), 64), desc="teacher", disable=not progress, unit="batch"):
        chunk = order[start : start + 64]
        out = torch.from_numpy(teacher.forward(tokenizer.collate([items[i] for i in chunk])))
        if rows is None:
            rows = torch.empty((len(items), out.shape[-1]), dtype=torch.float32)
        rows[chunk] = out
    if rows is None:
        raise TrainingError("no texts to distill on")
    return rows


def teacher_backend(description: ModelDescription, home: Path, threads: int) -> EncoderBackend:
    """The fastest float32 backend for computing a teacher's targets on CPU."""
    from models.runtime.factory import create_backend

    backend, _ = create_backend(description, "auto", "cpu", "float32", "none", home / "onnx", threads)
    return backend


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, task: str, config: DistillConfig
) -> torch.Tensor:
    """MSE + cosine for embeddings; temperature-scaled KL divergence for logits."""
    student = student.float()
    if task == "classify":
        t = config.temperature
        return F.kl_div(
            F.log_softmax(student / t, dim=-1), F.softmax(teacher / t, dim=-1), reduction="batchmean"
        ) * (t * t)
    mse = F.mse_loss(student, teacher)
    cosine = 1 - F.cosine_similarity(student, teacher, dim=-1).mean()
    return mse + config.cosine_weight * cosine


def _optimizer(model: torch.nn.Module, config: DistillConfig) -> torch.optim.AdamW:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 or "LayerNorm" in name else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate)


def _schedule(optimizer: torch.optim.Optimizer, total: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def distill_train(
    student: torch.nn.Module,
    tokenizer: TextTokenizer,
    items: Sequence[TokenizedText],
    targets: torch.Tensor,
    task: str,
    pooling: str,
    config: DistillConfig,
    progress: bool = False,
) -> TrainStats:
    """Train ``student`` (in place) to reproduce ``targets`` (the teacher's rows for ``items``)."""
    from models.runtime.torch_backend import takes_token_types

    if not items:
        raise TrainingError("no texts to distill on")
    set_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = random.Random(config.seed)
    token_types = takes_token_types(student)
    lengths = [item.tokens for item in items]
    passes = [length_bucketed_batches(lengths, config.batch_size, rng) for _ in range(config.epochs)]
    steps = math.ceil(sum(len(p) for p in passes) / config.grad_accumulation)
    if config.freeze_embeddings:
        embeddings: Any = getattr(student, "get_input_embeddings")()  # noqa: B009 (typed Any on purpose)
        embeddings.weight.requires_grad_(False)
    optimizer = _optimizer(student, config)
    scheduler = _schedule(optimizer, steps, int(steps * config.warmup_ratio))
    bf16 = native_bf16_available() if config.bf16 is None else config.bf16
    student.train()
    losses: list[float] = []
    started = time.perf_counter()
    batches = [batch for epoch in passes for batch in epoch]
    bar = tqdm(total=len(batches), desc="distill", disable=not progress, unit="batch")
    for index, chunk in enumerate(batches):
        batch = _as_batch(tokenizer, [items[i] for i in chunk], token_types)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            rows = model_rows(student, task, pooling, batch)
        loss = distillation_loss(rows, targets[chunk], task, config)
        (loss / config.grad_accumulation).backward()
        if (index + 1) % config.grad_accumulation == 0 or index + 1 == len(batches):
            torch.nn.utils.clip_grad_norm_([p for p in student.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
    bar.close()
    student.eval()
    student.requires_grad_(True)
    if not math.isfinite(losses[-1]):
        raise TrainingError("distillation diverged (non-finite loss); lower the learning rate")
    window = max(1, min(50, len(losses) // 4))
    return TrainStats(
        steps=steps,
        texts=len(items),
        first_loss=sum(losses[:window]) / window,
        last_loss=sum(losses[-window:]) / window,
        seconds=time.perf_counter() - started,
    )
