"""What the GPU plan runs: the models, their FLOPs per token, the batch shapes, the time budgets.

One :class:`Plan` for the lent GPU and one for the CPU dry run (tiny shapes, seconds): the same code runs
both, so the dry run in CI keeps the GPU run working.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertModel

#: The H200's bfloat16 matrix rate measured on the lent machine (8192^3 products on random data).
BF16_LIMIT_FLOPS = 790e12
#: BERT-base's shape (bert-base-uncased), the usual yardstick of encoder serving.
BERT_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
}
#: The dry run's stand-in for both models: a 2-layer BERT that runs in milliseconds on a CPU.
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
    "max_position_embeddings": 64,
}


def flops_per_token(config: dict[str, Any], seq_len: int) -> float:
    """Forward FLOPs per token of a BERT encoder at ``seq_len`` (multiply-add = 2 FLOPs): per layer,
    the Q, K, V and output projections (4 h^2), the FFN (2 h i), and the attention scores and their
    weighted sum (2 L h). Embeddings and pooling are lookups and sums, left out."""
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    per_layer = 2 * (4 * hidden * hidden + 2 * hidden * inter + 2 * seq_len * hidden)
    return float(config["num_hidden_layers"] * per_layer)


@dataclass(frozen=True)
class Plan:
    """Everything one run of the plan does. ``budget_s`` bounds the tests and the in-process sweep
    (points past it are skipped and reported as such, so the run always ends with a report); the served
    stage takes ``load_seconds`` per point plus the server's start."""

    dry_run: bool
    device: str
    dtype: str
    batches: tuple[int, ...]
    seq_lens: tuple[int, ...]
    modes: tuple[str, ...]
    #: Compiled modes build one graph per shape (tens of seconds each on a GPU): only these shapes.
    compiled_shapes: tuple[tuple[int, int], ...]
    compile_backend: str
    min_seconds: float
    concurrency: int
    processes: int
    per_request: tuple[int, ...]
    load_seconds: float
    sentences: int
    budget_s: dict[str, float] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The plan as JSON-ready data (written into the results)."""
        return asdict(self)


GPU_PLAN = Plan(
    dry_run=False,
    device="cuda",
    dtype="bfloat16",
    batches=(1, 8, 32, 64, 128, 256, 512),
    seq_lens=(32, 128),
    modes=("eager", "sdpa", "compile", "cudagraphs"),
    compiled_shapes=((256, 128), (32, 128), (1, 32)),  # the goal's shape first
    compile_backend="inductor",
    min_seconds=0.25,
    concurrency=256,
    processes=8,
    per_request=(1, 32),
    load_seconds=15.0,
    sentences=4000,
    budget_s={"tests": 150.0, "inprocess": 180.0},
)
DRY_PLAN = Plan(
    dry_run=True,
    device="cpu",
    dtype="float32",
    batches=(1, 4),
    seq_lens=(8, 16),
    modes=("eager", "sdpa", "compile"),
    compiled_shapes=((4, 16),),
    compile_backend="eager",  # dynamo traces the model; no C++ build in CI
    min_seconds=0.02,
    concurrency=8,
    processes=2,
    per_request=(1, 4),
    load_seconds=1.5,
    sentences=200,
    # Tiny shapes take seconds: a budget this size never cuts one, so the dry run measures every mode.
    budget_s={"tests": 60.0, "inprocess": 120.0},
)


class Deadline:
    """A stage's time budget."""

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds

    @property
    def left(self) -> float:
        """Seconds left (negative once past)."""
        return self.ends - time.monotonic()


def random_model_folder(config: dict[str, Any], target: Path, tokenizer_from: Path) -> Path:
    """A BERT encoder of ``config``'s shape with random weights (speed does not depend on them), saved
    as a mean-pooling sentence-transformers folder with ``tokenizer_from``'s tokenizer."""
    torch.manual_seed(0)
    BertModel(BertConfig(**config)).save_pretrained(target, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (tokenizer_from / name).is_file():
            (target / name).write_bytes((tokenizer_from / name).read_bytes())
    (target / "1_Pooling").mkdir(exist_ok=True)
    (target / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": config["hidden_size"], "pooling_mode_mean_tokens": True})
    )
    return target
