"""The ``prune`` recipes: structured (heads + FFN neurons, really smaller) and unstructured (magnitude).

Structured pruning scores every attention head and every feed-forward neuron by how much the task loss
moves when it is gated off (the expected absolute gradient of the loss with respect to a gate on its
output, Michel et al. 2019, "Are Sixteen Heads Really Better than One?"), normalised per layer, keeps the
best ones across the whole model (at least one head and 1/16 of the neurons in every layer), slices the
weight matrices to match, and recovers with a short distillation from the unpruned model. The task loss
for an embedding model is STS-B train (cosine of the pair against the gold score); for a classifier,
cross-entropy on the sentiment training split. ``importance="random"`` is the control: the same
procedure with random scores.

Unstructured magnitude pruning zeroes the smallest weights of every encoder matrix. The matrices keep
their shape, so dense kernels run no faster: the report shows it.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)
from tqdm import tqdm

from models.runtime.folders import ModelDescription, describe_model
from models.runtime.structure import encoder_layers, head_size, keep_heads, keep_neurons
from models.runtime.tokenization import TextTokenizer
from models.runtime.torch_backend import load_module, module_inputs, module_rows, takes_token_types
from models.training.data import load_sts, sentiment_splits
from models.training.distill import save_variant, training_items
from models.training.distillation import DistillConfig, distill_train, teacher_backend, teacher_rows
from models.training.errors import TrainingError
from models.training.loop import check_target

Importance = Literal["gradient", "random"]
#: Per layer, at least this fraction of the FFN neurons stays (a layer without FFN breaks the residual mix).
_MIN_NEURON_FRACTION = 1 / 16


class _Gates:
    """Multiplicative gates (all ones) on every head's and every FFN neuron's output, with hooks."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.heads: list[torch.Tensor] = []
        self.neurons: list[torch.Tensor] = []
        self._hooks = []
        for layer in encoder_layers(model):
            size = head_size(layer)
            heads = torch.ones(layer.attention.self.query.out_features // size, requires_grad=True)
            neurons = torch.ones(layer.intermediate.dense.out_features, requires_grad=True)
            self.heads.append(heads)
            self.neurons.append(neurons)
            self._hooks.append(layer.attention.output.dense.register_forward_pre_hook(_gate(heads, size)))
            self._hooks.append(layer.output.dense.register_forward_pre_hook(_gate(neurons, 1)))

    def remove(self) -> None:
        """Detach the hooks (the model computes as before)."""
        for hook in self._hooks:
            hook.remove()


def _gate(gate: torch.Tensor, width: int) -> Any:
    def hook(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (args[0] * gate.repeat_interleave(width),)

    return hook


def _task_batches(
    description: ModelDescription, home: Path, examples: int, seed: int
) -> list[dict[str, Any]]:
    """Labelled batches for the task loss: STS-B train pairs, or sentiment training texts."""
    rng = random.Random(seed)
    if description.task == "classify":
        train, _ = sentiment_splits(home)
        chosen = rng.sample(train, min(examples, len(train)))
        return [
            {"texts": [e.text for e in chosen[i : i + 32]], "labels": [e.label for e in chosen[i : i + 32]]}
            for i in range(0, len(chosen), 32)
        ]
    pairs = load_sts("train", home)
    chosen_pairs = rng.sample(pairs, min(examples, len(pairs)))
    return [
        {
            "texts": [p.sentence1 for p in chosen_pairs[i : i + 32]]
            + [p.sentence2 for p in chosen_pairs[i : i + 32]],
            "scores": [p.score / 5 for p in chosen_pairs[i : i + 32]],
        }
        for i in range(0, len(chosen_pairs), 32)
    ]


def _task_loss(
    model: torch.nn.Module, description: ModelDescription, tokenizer: TextTokenizer, batch: dict[str, Any]
) -> torch.Tensor:
    inputs = tokenizer.collate(tokenizer.encode(batch["texts"], truncate=True))
    rows = module_rows(
        model, description.task, description.pooling, module_inputs(inputs, takes_token_types(model))
    )
    if description.task == "classify":
        return F.cross_entropy(rows, torch.tensor(batch["labels"]))
    half = rows.shape[0] // 2
    similarity = F.cosine_similarity(rows[:half], rows[half:], dim=-1)
    return F.mse_loss(similarity, torch.tensor(batch["scores"], dtype=similarity.dtype))


def unit_importance(
    model: torch.nn.Module,
    description: ModelDescription,
    home: Path,
    examples: int = 1024,
    seed: int = 13,
    progress: bool = False,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per layer: head scores and neuron scores (expected |d loss / d gate|, L2-normalised per layer)."""
    tokenizer = TextTokenizer.from_folder(description.path, min(128, description.max_input_tokens))
    gates = _Gates(model)
    head_scores = [torch.zeros_like(g) for g in gates.heads]
    neuron_scores = [torch.zeros_like(g) for g in gates.neurons]
    model.eval()  # no dropout: the scores are about the model, not the noise
    try:
        for batch in tqdm(
            _task_batches(description, home, examples, seed), desc="importance", disable=not progress
        ):
            model.zero_grad(set_to_none=True)
            grads = torch.autograd.grad(
                _task_loss(model, description, tokenizer, batch), gates.heads + gates.neurons
            )
            for score, grad in zip(head_scores + neuron_scores, grads, strict=True):
                score += grad.abs()
    finally:
        gates.remove()
    return [_normalise(s) for s in head_scores], [_normalise(s) for s in neuron_scores]


def _normalise(scores: torch.Tensor) -> torch.Tensor:
    return scores / (scores.norm() + 1e-12)


def random_importance(model: torch.nn.Module, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The control: random scores with the same shapes."""
    generator = torch.Generator().manual_seed(seed)
    layers = encoder_layers(model)
    heads = [
        torch.rand(layer.attention.self.query.out_features // head_size(layer), generator=generator)
        for layer in layers
    ]
    neurons = [torch.rand(layer.intermediate.dense.out_features, generator=generator) for layer in layers]
    return heads, neurons


def select_units(scores: list[torch.Tensor], keep_fraction: float, minimum: float) -> list[list[int]]:
    """Indices to keep per layer: the globally best ``keep_fraction``, at least ``minimum`` per layer."""
    if not 0 < keep_fraction <= 1:
        raise TrainingError(f"keep fraction must be in (0, 1], got {keep_fraction}")
    total = sum(len(s) for s in scores)
    floors = [max(1, int(len(s) * minimum)) for s in scores]
    ranked = sorted(
        ((float(v), layer, i) for layer, s in enumerate(scores) for i, v in enumerate(s)), reverse=True
    )
    kept: list[set[int]] = [
        set(torch.topk(s, floor).indices.tolist()) for s, floor in zip(scores, floors, strict=True)
    ]
    budget = max(round(total * keep_fraction), sum(floors))
    for _, layer, index in ranked:
        if sum(len(k) for k in kept) >= budget:
            break
        kept[layer].add(index)
    return [sorted(k) for k in kept]


def apply_selection(model: torch.nn.Module, heads: list[list[int]], neurons: list[list[int]]) -> None:
    """Slice every layer of ``model`` to the selected heads and neurons."""
    for layer, layer_heads, layer_neurons in zip(encoder_layers(model), heads, neurons, strict=True):
        keep_heads(layer, layer_heads)
        keep_neurons(layer, layer_neurons)


def prune_structured(
    base_path: Path,
    out: Path,
    home: Path,
    keep_heads_fraction: float,
    keep_neurons_fraction: float,
    importance: Importance = "gradient",
    recovery: DistillConfig | None = None,
    progress: bool = True,
    overwrite: bool = False,
    importance_examples: int = 1024,
    teacher_path: Path | None = None,
) -> dict[str, Any]:
    """Prune heads and FFN neurons of ``base_path`` and recover by distillation (``recovery`` None: skip).

    The recovery distils toward ``teacher_path`` when given (for a distilled student: its own, larger
    teacher, which it only approximates), else toward ``base_path`` unpruned."""
    check_target(out, overwrite)  # before minutes of work, not after
    base = describe_model(base_path)
    teacher = recovery_teacher(base, teacher_path)
    model = load_module(base, "cpu", torch.float32)
    seed = recovery.seed if recovery else 13
    if importance == "gradient":
        head_scores, neuron_scores = unit_importance(model, base, home, importance_examples, seed, progress)
    else:
        head_scores, neuron_scores = random_importance(model, seed)
    heads = select_units(head_scores, keep_heads_fraction, minimum=0)
    neurons = select_units(neuron_scores, keep_neurons_fraction, minimum=_MIN_NEURON_FRACTION)
    apply_selection(model, heads, neurons)
    settings: dict[str, Any] = {
        "keep_heads": keep_heads_fraction,
        "keep_neurons": keep_neurons_fraction,
        "importance": importance,
    }
    extra: dict[str, Any] = {}
    if recovery is not None:
        tokenizer, items = training_items(base, home, recovery)
        targets = teacher_rows(teacher_backend(teacher, home, recovery.threads), tokenizer, items, progress)
        stats = distill_train(model, tokenizer, items, targets, base.task, base.pooling, recovery, progress)
        settings["recovery"] = recovery.settings()
        settings["teacher"] = {"path": str(teacher.path), "fingerprint": teacher.fingerprint}
        extra["training"] = asdict(stats)
    return save_variant(model, base, out, "prune", settings, overwrite, **extra)


def recovery_teacher(base: ModelDescription, teacher_path: Path | None) -> ModelDescription:
    """The model a pruned ``base`` recovers toward: ``base`` itself when ``teacher_path`` is None, else
    ``teacher_path``, whose outputs and vocabulary must be those of ``base`` (same task, width, labels and
    tokenizer files: :class:`TrainingError` otherwise)."""
    if teacher_path is None:
        return base
    teacher = describe_model(teacher_path)
    outputs = (teacher.task, teacher.hidden_size, teacher.labels)
    same_outputs = outputs == (base.task, base.hidden_size, base.labels)
    if not same_outputs or _vocabulary(teacher.path) != _vocabulary(base.path):
        raise TrainingError(
            f"teacher {teacher.path} does not match {base.path}: a recovery teacher needs the same task, "
            "output width, labels and tokenizer"
        )
    return teacher


def _vocabulary(folder: Path) -> bytes:
    """The folder's vocabulary file (``tokenizer.json`` or ``vocab.txt``), as bytes."""
    for name in ("tokenizer.json", "vocab.txt"):
        if (folder / name).is_file():
            return (folder / name).read_bytes()
    return b""


def prune_magnitude(base_path: Path, out: Path, sparsity: float, overwrite: bool = False) -> dict[str, Any]:
    """Zero the ``sparsity`` fraction of smallest-magnitude weights of every encoder matrix."""
    if not 0 < sparsity < 1:
        raise TrainingError(f"sparsity must be in (0, 1), got {sparsity}")
    check_target(out, overwrite)
    base = describe_model(base_path)
    model = load_module(base, "cpu", torch.float32)
    with torch.no_grad():
        for layer in encoder_layers(model):
            for module in layer.modules():
                if isinstance(module, torch.nn.Linear):
                    weight = module.weight
                    cut = int(weight.numel() * sparsity)
                    threshold = weight.abs().flatten().kthvalue(cut).values
                    weight.mul_((weight.abs() > threshold).to(weight.dtype))
    return save_variant(model, base, out, "prune-magnitude", {"sparsity": sparsity}, overwrite)
