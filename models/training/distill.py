"""The ``distill`` recipe: a student with fewer layers, initialised from the teacher's own layers.

The student is the teacher with only some of its transformer layers (spread evenly, the last one always
kept: the layer the pooling reads), so it starts close to the teacher and distillation on unlabeled text
closes most of the gap (as in DistilBERT, which took every other layer of BERT).
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from models.runtime.folders import ModelDescription, describe_model
from models.runtime.structure import encoder_layers, pruned_structure
from models.runtime.tokenization import TextTokenizer, TokenizedText
from models.runtime.torch_backend import load_module
from models.training.distillation import (
    DistillConfig,
    distill_train,
    teacher_backend,
    teacher_rows,
    unlabeled_texts,
)
from models.training.errors import TrainingError
from models.training.loop import check_target, publishing
from models.training.variant import copy_model_files, save_torch_weights, write_manifest


def spread_layers(total: int, keep: int) -> list[int]:
    """``keep`` layer indices out of ``total``, evenly spread, ending with the last layer."""
    if not 1 <= keep <= total:
        raise TrainingError(f"cannot keep {keep} of {total} layers")
    return [round((i + 1) * total / keep) - 1 for i in range(keep)]


def make_student(teacher: torch.nn.Module, layers: list[int]) -> Any:
    """A copy of ``teacher`` keeping only the transformer ``layers`` (in order)."""
    total = len(encoder_layers(teacher))
    if not layers or any(not 0 <= i < total for i in layers) or layers != sorted(set(layers)):
        raise TrainingError(f"layers {layers} are not increasing indices of the teacher's {total} layers")
    student: Any = copy.deepcopy(teacher)
    encoder = student.base_model.encoder
    encoder.layer = torch.nn.ModuleList([encoder.layer[i] for i in layers])
    student.config.num_hidden_layers = len(layers)
    return student


def training_items(
    base: ModelDescription, home: Path, config: DistillConfig
) -> tuple[TextTokenizer, list[TokenizedText]]:
    """The tokenizer and the tokenized unlabeled texts a student trains on."""
    tokenizer = TextTokenizer.from_folder(base.path, min(config.max_length, base.max_input_tokens))
    texts = unlabeled_texts(home)
    if config.max_texts is not None:
        texts = texts[: config.max_texts]
    return tokenizer, tokenizer.encode(texts, truncate=True)


def save_variant(
    model: torch.nn.Module,
    base: ModelDescription,
    out: Path,
    recipe: str,
    settings: dict[str, Any],
    overwrite: bool,
    **extra: Any,
) -> dict[str, Any]:
    """Write ``model`` as a variant folder of ``base`` (atomically) and return its manifest."""
    with publishing(out, overwrite) as scratch:
        copy_model_files(base.path, scratch)
        save_torch_weights(model, scratch)
        return write_manifest(scratch, base, recipe, settings, structure=pruned_structure(model), **extra)


def distill(
    base_path: Path,
    out: Path,
    home: Path,
    layers: int | list[int],
    config: DistillConfig | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Distill ``base_path`` into a student with ``layers`` (a count or explicit indices) at ``out``."""
    config = config or DistillConfig()
    check_target(out, overwrite)  # before minutes of work, not after
    base = describe_model(base_path)
    tokenizer, items = training_items(base, home, config)
    targets = teacher_rows(teacher_backend(base, home, config.threads), tokenizer, items, progress)
    teacher = load_module(base, "cpu", torch.float32)
    total = len(encoder_layers(teacher))
    chosen = spread_layers(total, layers) if isinstance(layers, int) else list(layers)
    student = make_student(teacher, chosen)
    del teacher
    stats = distill_train(student, tokenizer, items, targets, base.task, base.pooling, config, progress)
    settings = {"layers": chosen, "teacher_layers": total, **config.settings()}
    return save_variant(student, base, out, "distill", settings, overwrite, training=asdict(stats))
