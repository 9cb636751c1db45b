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

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)

from models.runtime.contract import EncoderBackend
from models.runtime.factory import create_backend
from models.runtime.folders import ModelDescription
from models.runtime.inference import encoded_rows
from models.runtime.tokenization import TextTokenizer, TokenizedText
from models.runtime.torch_backend import module_inputs, module_rows, takes_token_types
from models.runtime.types import Pooling, Task
from models.training import loop
from models.training.data import load_sts, sentiment_splits
from models.training.errors import TrainingError
from models.training.loop import TrainingConfig


@dataclass
class DistillConfig(TrainingConfig):
    """Hyper-parameters of :func:`distill_train`: the shared ones (:class:`TrainingConfig`, here over the
    unlabeled texts) and the distillation loss's.

    Attributes:
        temperature: Softmax temperature of the logit (KL) loss, classifiers only.
        cosine_weight: Weight of the (1 - cosine) term next to the MSE, embedding models only.
        max_texts: Optional cap on training texts (for quick runs and tests).
    """

    epochs: int = 3
    batch_size: int = 64
    temperature: float = 2.0
    cosine_weight: float = 1.0
    max_texts: int | None = None

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


def teacher_rows(
    teacher: EncoderBackend,
    tokenizer: TextTokenizer,
    items: Sequence[TokenizedText],
    progress: bool = False,
) -> torch.Tensor:
    """The teacher's float32 rows for every item, from any backend (ONNX Runtime is the fastest on CPU)."""
    if not items:
        raise TrainingError("no texts to distill on")
    return torch.from_numpy(encoded_rows(teacher, tokenizer, items, 64, "teacher" if progress else None))


def teacher_backend(description: ModelDescription, home: Path, threads: int) -> EncoderBackend:
    """The fastest float32 backend for computing a teacher's targets on CPU."""
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


def distill_train(
    student: torch.nn.Module,
    tokenizer: TextTokenizer,
    items: Sequence[TokenizedText],
    targets: torch.Tensor,
    task: Task,
    pooling: Pooling,
    config: DistillConfig,
    progress: bool = False,
) -> TrainStats:
    """Train ``student`` (in place) to reproduce ``targets`` (the teacher's rows for ``items``)."""
    if not items:
        raise TrainingError("no texts to distill on")
    loop.set_seed(config.seed)
    token_types = takes_token_types(student)

    def forward(chunk: list[int]) -> torch.Tensor:
        inputs = tokenizer.collate([items[i] for i in chunk])
        return module_rows(student, task, pooling, module_inputs(inputs, token_types))

    def objective(rows: torch.Tensor, chunk: list[int]) -> torch.Tensor:
        return distillation_loss(rows, targets[chunk], task, config)

    started = time.perf_counter()
    losses = loop.train(
        student, [item.tokens for item in items], forward, config, objective, "distill" if progress else None
    )
    window = max(1, min(50, len(losses) // 4))
    return TrainStats(
        steps=len(losses),
        texts=len(items),
        first_loss=sum(losses[:window]) / window,
        last_loss=sum(losses[-window:]) / window,
        seconds=time.perf_counter() - started,
    )
