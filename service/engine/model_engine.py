"""One engine per served model: admission, tokenization, cross-request batching, post-processing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from models.runtime.contract import EncoderBackend
from models.runtime.errors import InputTooLongError
from models.runtime.folders import ModelDescription
from models.runtime.postprocess import finish_embeddings, rank_labels, softmax
from models.runtime.tokenization import TextTokenizer
from models.runtime.types import Direction
from service.engine.batcher import Batcher, BatchStats
from service.engine.cached import CachedRows
from service.engine.queue import BatchQueue, PendingRequest, QueueLimits
from service.engine.usage import Usage
from service.errors import DeadlineExceededError, InvalidInputError

logger = logging.getLogger(__name__)

#: use: look up and store; refresh: compute and store (Cache-Control: no-cache); bypass: neither (no-store).
CachePolicy = Literal["use", "refresh", "bypass"]


@dataclass(frozen=True)
class EmbedOptions:
    """Options that change an embedding."""

    normalize: bool = True
    truncate: bool = True
    direction: Direction = "right"
    dimensions: int | None = None
    cache: CachePolicy = "use"


@dataclass(frozen=True)
class ClassifyOptions:
    """Options that change a classification."""

    raw_scores: bool = False
    top_k: int | None = None
    truncate: bool = True
    direction: Direction = "right"
    cache: CachePolicy = "use"


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
class EngineConfig:
    """Knobs of one engine (from the settings)."""

    queue: QueueLimits
    max_wait_s: float
    request_timeout_s: float
    inline_tokenize_chars: int = 0


class ModelEngine:
    """Serves one model: the only object the HTTP layer calls to run it.

    Pre (tokenize: inline when the request is short, else in the shared tokenizer pool) -> queue ->
    forward (the model's batcher thread, batches merged across requests) -> post (normalise / softmax,
    back on the caller's side).
    """

    def __init__(
        self,
        name: str,
        description: ModelDescription,
        tokenizer: TextTokenizer,
        backend: EncoderBackend,
        config: EngineConfig,
        tokenize_pool: Executor,
        on_batch: Callable[[BatchStats], None] | None = None,
        cached: CachedRows | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.tokenizer = tokenizer
        self.backend = backend
        self.config = config
        self._tokenize_pool = tokenize_pool
        self.cached = cached
        self.queue = BatchQueue(config.queue)
        self.batcher = Batcher(name, self.queue, tokenizer, backend, config.max_wait_s, on_batch)

    @property
    def task(self) -> str:
        """``embed`` or ``classify``."""
        return self.description.task

    def start(self) -> None:
        """Start taking batches."""
        self.batcher.start()

    async def embed(self, texts: list[str], options: EmbedOptions) -> EmbedResult:
        """Embed ``texts`` (already validated as non-empty strings)."""
        dims = options.dimensions
        if dims is not None and dims > self.description.hidden_size:
            raise InvalidInputError(f"dimensions {dims} exceeds the model's {self.description.hidden_size}")
        rows, usage = await self._rows(texts, options.truncate, options.direction, options.cache)
        return EmbedResult(finish_embeddings(rows, options.normalize, dims), usage)

    async def classify(self, texts: list[str], options: ClassifyOptions) -> ClassifyResult:
        """Classify ``texts``; scores are softmax probabilities unless ``raw_scores``."""
        rows, usage = await self._rows(texts, options.truncate, options.direction, options.cache)
        scores = rows if options.raw_scores else softmax(rows)
        return ClassifyResult(rank_labels(scores, self.description.labels, options.top_k), usage)

    async def _rows(
        self, texts: list[str], truncate: bool, direction: Direction, policy: CachePolicy
    ) -> tuple[np.ndarray, Usage]:
        """Model rows for ``texts``, through the cache unless the policy says otherwise."""

        async def compute(subset: list[str]) -> tuple[np.ndarray, Usage]:
            try:
                return await self._run(subset, truncate, direction)
            except InputTooLongError as exc:  # report the index in the client's own list
                raise InputTooLongError(texts.index(subset[exc.index]), exc.tokens, exc.limit) from exc

        if self.cached is None or policy == "bypass":
            return await self._run(texts, truncate, direction)
        if policy == "refresh":
            return await self.cached.refresh(texts, direction, compute)
        return await self.cached.rows(texts, direction, compute)

    async def _run(self, texts: list[str], truncate: bool, direction: Direction) -> tuple[np.ndarray, Usage]:
        self.queue.admit()  # 429 at once when full: before any work is spent on the request
        try:
            return await self._tokenize_and_wait(texts, truncate, direction)
        finally:
            self.queue.release()

    async def _tokenize_and_wait(
        self, texts: list[str], truncate: bool, direction: Direction
    ) -> tuple[np.ndarray, Usage]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        deadline = started + self.config.request_timeout_s
        if sum(map(len, texts)) <= self.config.inline_tokenize_chars:
            # A short request tokenizes in tens of microseconds: less than two thread hand-offs.
            items = self.tokenizer.encode(texts, truncate, direction)
        else:
            items = await loop.run_in_executor(
                self._tokenize_pool, self.tokenizer.encode, texts, truncate, direction
            )
        future: asyncio.Future[PendingRequest] = loop.create_future()

        def on_done(done: PendingRequest) -> None:  # called on the batcher thread
            loop.call_soon_threadsafe(_settle, future, done)

        request = PendingRequest(size=len(items), deadline=deadline, on_done=on_done)
        self.queue.put(request, items)
        try:
            await asyncio.wait_for(future, timeout=max(deadline - time.perf_counter(), 0.0))
        except TimeoutError as exc:
            request.abandoned = True
            raise DeadlineExceededError(f"not served within {self.config.request_timeout_s:g} s") from exc
        except asyncio.CancelledError:
            request.abandoned = True  # the client went away: its queued items are dropped
            raise
        if request.error is not None:
            raise request.error
        assert request.rows is not None
        assert request.first_batch_at is not None
        usage = Usage(
            item_tokens=[item.tokens for item in items],
            truncated=sum(item.truncated for item in items),
            tokenize_s=request.enqueued_at - started,
            queue_s=request.first_batch_at - request.enqueued_at,
            inference_s=request.last_batch_end - request.first_batch_at,
        )
        return request.rows, usage

    def warm_up(self) -> None:
        """Run one small batch so the first request does not pay for lazy initialisation."""
        items = self.tokenizer.encode(["bertserve warm-up sentence."], truncate=True)
        self.backend.forward(self.tokenizer.collate(items))

    def close(self) -> None:
        """Stop the batcher thread at shutdown: the batch inside the model finishes, queued inputs are
        dropped. By then the server has answered every request it finished in its grace period and
        cancelled the others, so nobody waits for them (draining them could take minutes)."""
        dropped = self.queue.discard()
        if dropped:
            logger.warning("model %s: %d queued inputs dropped at shutdown", self.name, dropped)
        self.batcher.stop()


def _settle(future: asyncio.Future[PendingRequest], request: PendingRequest) -> None:
    if not future.done():
        future.set_result(request)
