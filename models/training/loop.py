"""The one training loop, shared by fine-tuning (:mod:`models.training.finetune`) and distillation
(:mod:`models.training.distillation`), and the one way a trained folder is published.

The loop owns what both need the same: length-bucketed batches in a seeded random order, AdamW with the
standard parameter groups (no weight decay on biases and LayerNorm weights), linear warm-up then linear
decay to zero, bfloat16 autocast on CPUs with native bf16, gradient accumulation weighted by examples,
gradient clipping, the torch thread count, and a divergence check. The caller supplies the forward pass
and, optionally, the loss over its output.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from transformers import get_linear_schedule_with_warmup

from models.runtime.devices import default_threads
from models.runtime.structure import encoder_layers
from models.training.errors import TrainingError

#: Runs the model on the examples at these indices (under autocast); returns the loss, or the output that
#: the objective turns into one.
Forward = Callable[[list[int]], torch.Tensor]
#: The loss of a forward pass's output for the examples at these indices (outside autocast).
Objective = Callable[[torch.Tensor, list[int]], torch.Tensor]


@dataclass
class TrainingConfig:
    """What every training run of the pipeline is configured by (fine-tuning and distillation extend it).

    Attributes:
        epochs: Passes over the training examples.
        learning_rate: Peak AdamW learning rate, reached after warm-up; then linear decay to zero.
        warmup_ratio: Fraction of optimizer steps spent in linear warm-up.
        weight_decay: AdamW weight decay (never on biases and LayerNorm weights).
        batch_size: Examples per forward/backward pass.
        grad_accumulation: Passes per optimizer step (effective batch = batch_size x this).
        max_length: Token truncation of the training texts.
        seed: Seeds torch, numpy, random (so dropout and a new head's initialisation) and the batch order.
        bf16: bfloat16 autocast for training passes (weights and optimizer stay float32); None = only on
            CPUs with native bf16 (AVX512-BF16 / AMX), where it is about twice as fast.
        threads: torch intra-op threads during the run (default: one per core).
        freeze_embeddings: Keep the word-embedding matrix (about half of MiniLM's parameters) frozen: the
            optimizer skips it, and a student's vocabulary stays its teacher's.
        frozen_layers: Also freeze the whole embedding block and this many lowest encoder layers: the
            backward pass stops above them, which saves their share of it (about a third per 2 of 6
            layers).
    """

    epochs: int = 1
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    batch_size: int = 32
    grad_accumulation: int = 1
    max_length: int = 128
    seed: int = 13
    bf16: bool | None = None
    threads: int = field(default_factory=default_threads)
    freeze_embeddings: bool = True
    frozen_layers: int = 0


def native_bf16_available() -> bool:
    """Whether this CPU has native bfloat16 matmuls (AVX512-BF16 or AMX)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def use_bf16(requested: bool | None) -> bool:
    """bf16 autocast as configured; ``None``: only where the CPU has it natively (else it is slower)."""
    return native_bf16_available() if requested is None else requested


def set_seed(seed: int) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` for the block, then the previous count again."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Group example indices into batches of similar token length.

    Indices are sorted by length (ties broken randomly), cut into batches of
    ``batch_size`` and the batch order is shuffled with ``rng``, so padding stays
    minimal while the order of batches is still random and reproducible.
    """
    keys = [(length, rng.random(), i) for i, length in enumerate(lengths)]
    order = [i for _, _, i in sorted(keys)]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on the trainable weights, none on biases and LayerNorm weights."""
    decay: list[torch.nn.Parameter] = []
    plain: list[torch.nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            no_decay = name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name
            (plain if no_decay else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def optimizer_steps(lengths: Sequence[int], config: TrainingConfig) -> list[list[list[int]]]:
    """Every optimizer step of the run: its batches (``grad_accumulation`` of them, fewer at an epoch's
    end), each a list of example indices. Seeded: the same config gives the same order."""
    rng = random.Random(config.seed)
    steps = []
    for _ in range(config.epochs):
        batches = length_bucketed_batches(lengths, config.batch_size, rng)
        acc = config.grad_accumulation
        steps += [batches[s : s + acc] for s in range(0, len(batches), acc)]
    return steps


def freeze_lower(model: torch.nn.Module, layers: int) -> None:
    """Freeze the embedding block and the ``layers`` lowest encoder layers (until :func:`train` ends)."""
    getattr(model, "base_model", model).embeddings.requires_grad_(False)
    for layer in encoder_layers(model)[:layers]:
        layer.requires_grad_(False)


def train(
    model: torch.nn.Module,
    lengths: Sequence[int],
    forward: Forward,
    config: TrainingConfig,
    objective: Objective | None = None,
    progress: str | None = None,
) -> list[float]:
    """Train ``model`` in place on the examples whose token counts are ``lengths``; returns the loss of
    every optimizer step. Seed the run (:func:`set_seed`) before building what it trains.

    ``progress``: a label for a progress bar over the steps (None: no bar). Raises
    :class:`TrainingError` when the loss stops being finite.
    """
    if not lengths:
        raise TrainingError("no examples to train on")
    steps = optimizer_steps(lengths, config)
    if config.freeze_embeddings:
        embeddings: Any = getattr(model, "get_input_embeddings")()  # noqa: B009 (typed Any on purpose)
        embeddings.weight.requires_grad_(False)
    if config.frozen_layers:
        freeze_lower(model, config.frozen_layers)
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, round(config.warmup_ratio * len(steps)), len(steps)
    )
    bf16 = use_bf16(config.bf16)
    trainable = [p for p in model.parameters() if p.requires_grad]
    losses: list[float] = []
    model.train()
    with (
        torch_threads(config.threads),
        tqdm(total=len(steps), desc=progress, disable=progress is None) as bar,
    ):
        for step in steps:
            loss = _accumulate(step, forward, objective, bf16)
            if not math.isfinite(loss):
                raise TrainingError(f"training diverged: loss is {loss}; lower the learning rate")
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
    model.eval()
    model.requires_grad_(True)
    return losses


def _accumulate(step: list[list[int]], forward: Forward, objective: Objective | None, bf16: bool) -> float:
    """Forward and backward every batch of one step; gradients are weighted by examples per batch."""
    examples = sum(len(batch) for batch in step)
    total = 0.0
    for batch in step:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            output = forward(batch)
        loss = output if objective is None else objective(output, batch)
        weighted = loss * (len(batch) / examples)
        weighted.backward()
        total += float(weighted.detach())
    return total


def check_target(target: Path, overwrite: bool) -> None:
    """Raise :class:`TrainingError` when ``target`` exists and may not be replaced (checked before the
    work starts, and again by :func:`publishing`)."""
    if target.exists() and not overwrite:
        raise TrainingError(f"{target} already exists (pass overwrite to rebuild it)")


@contextmanager
def publishing(target: Path, overwrite: bool) -> Iterator[Path]:
    """A scratch folder next to ``target`` that replaces it when the block succeeds.

    A crash mid-build leaves no half-written model where the service would load it: the old folder is
    moved aside, the new one renamed into place, then the old one deleted. Every failure to do so is a
    :class:`TrainingError`.
    """
    check_target(target, overwrite)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        scratch.chmod(0o755)  # mkdtemp makes it private; a model folder is read by the server's user
    except OSError as exc:
        raise TrainingError(f"cannot write next to {target}: {exc}") from exc
    try:
        yield scratch
        _replace(scratch, target, overwrite)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _replace(scratch: Path, target: Path, overwrite: bool) -> None:
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    moved = False
    try:
        if target.exists():
            check_target(target, overwrite)  # it may have appeared while the model trained
            target.rename(old)
            moved = True
        scratch.rename(target)
    except OSError as exc:
        if moved:
            old.rename(target)  # put the previous model back: a failed build never removes one
        raise TrainingError(f"cannot move the trained model to {target}: {exc}") from exc
    shutil.rmtree(old, ignore_errors=True)
