"""One engine per served model: tokenize in a thread pool, infer on a dedicated thread.

Pre / forward / post are split: tokenization (and the token-limit check) happens in a shared pool of
tokenizer threads, the forward pass on the model's own single inference thread (one batch at a time,
length-sorted and cut to the token budget), and post-processing back on the caller's side.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from models.errors import ModelError
from models.loading import ModelDescription
from models.postprocess import finish_embeddings, rank_labels, softmax
from models.runtime import EncoderBackend
from models.tokenization import TextTokenizer, TokenizedText
from service.engine.batching import plan_batches
from service.errors import InferenceError, InvalidInputError

logger = logging.getLogger(__name__)

Direction = Literal["right", "left"]


@dataclass(frozen=True)
class EmbedOptions:
    """Options that change an embedding."""

    normalize: bool = True
    truncate: bool = True
    direction: Direction = "right"
    dimensions: int | None = None


@dataclass(frozen=True)
class ClassifyOptions:
    """Options that change a classification."""

    raw_scores: bool = False
    top_k: int | None = None
    truncate: bool = True
    direction: Direction = "right"


@dataclass
class Usage:
    """What a request cost, for usage fields, headers and metrics."""

    item_tokens: list[int] = field(default_factory=list)
    truncated: int = 0
    batches: int = 0
    tokenize_s: float = 0.0
    inference_s: float = 0.0

    @property
    def tokens(self) -> int:
        """Tokens computed for the request."""
        return sum(self.item_tokens)


@dataclass
class EmbedResult:
    """Embeddings in input order."""

    vectors: np.ndarray
    usage: Usage = field(default_factory=Usage)


@dataclass
class ClassifyResult:
    """Ranked ``(label, score)`` pairs per input, in input order."""

    ranked: list[list[tuple[str, float]]]
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class BatchLimits:
    """How large one model batch may be."""

    max_tokens: int
    max_items: int


class ModelEngine:
    """Serves one model: the only object the HTTP layer calls to run it."""

    def __init__(
        self,
        name: str,
        description: ModelDescription,
        tokenizer: TextTokenizer,
        backend: EncoderBackend,
        limits: BatchLimits,
        tokenize_pool: Executor,
    ) -> None:
        self.name = name
        self.description = description
        self.tokenizer = tokenizer
        self.backend = backend
        self.limits = limits
        self._tokenize_pool = tokenize_pool
        self._infer_pool = ThreadPoolExecutor(1, thread_name_prefix=f"infer-{name}")

    @property
    def task(self) -> str:
        """``embed`` or ``classify``."""
        return self.description.task

    async def embed(self, texts: list[str], options: EmbedOptions) -> EmbedResult:
        """Embed ``texts`` (already validated as non-empty strings)."""
        dims = options.dimensions
        if dims is not None and dims > self.description.hidden_size:
            raise InvalidInputError(f"dimensions {dims} exceeds the model's {self.description.hidden_size}")
        rows, usage = await self._run(texts, options.truncate, options.direction)
        return EmbedResult(finish_embeddings(rows, options.normalize, dims), usage)

    async def classify(self, texts: list[str], options: ClassifyOptions) -> ClassifyResult:
        """Classify ``texts``; scores are softmax probabilities unless ``raw_scores``."""
        rows, usage = await self._run(texts, options.truncate, options.direction)
        scores = rows if options.raw_scores else softmax(rows)
        return ClassifyResult(rank_labels(scores, self.description.labels, options.top_k), usage)

    async def _run(self, texts: list[str], truncate: bool, direction: Direction) -> tuple[np.ndarray, Usage]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        items = await loop.run_in_executor(
            self._tokenize_pool, self.tokenizer.encode, texts, truncate, direction
        )
        tokenized = time.perf_counter()
        rows, batches = await loop.run_in_executor(self._infer_pool, self._infer, items)
        usage = Usage(
            item_tokens=[item.tokens for item in items],
            truncated=sum(item.truncated for item in items),
            batches=batches,
            tokenize_s=tokenized - started,
            inference_s=time.perf_counter() - tokenized,
        )
        return rows, usage

    def _infer(self, items: list[TokenizedText]) -> tuple[np.ndarray, int]:
        """Run ``items`` through the model in length-sorted budgeted batches (inference thread)."""
        plan = plan_batches([item.tokens for item in items], self.limits.max_tokens, self.limits.max_items)
        out: np.ndarray | None = None
        for batch in plan:
            try:
                rows = self.backend.forward(self.tokenizer.collate([items[i] for i in batch]))
            except (RuntimeError, ModelError, ValueError) as exc:
                logger.exception("model %s failed on a batch of %d", self.name, len(batch))
                raise InferenceError(f"model {self.name!r} failed to run this batch") from exc
            if out is None:
                out = np.empty((len(items), rows.shape[1]), dtype=np.float32)
            out[batch] = rows
        assert out is not None  # validated requests are never empty
        return out, len(plan)

    def warm_up(self) -> None:
        """Run one small batch so the first request does not pay for lazy initialisation."""
        items = self.tokenizer.encode(["bertserve warm-up sentence."], truncate=True)
        self._infer(items)

    def close(self) -> None:
        """Stop the inference thread once queued work is done."""
        self._infer_pool.shutdown(wait=True)
