"""One engine per served model: admission, tokenization, cross-request batching, post-processing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np

from models.runtime.contract import EncoderBackend
from models.runtime.errors import InputTooLongError
from models.runtime.folders import ModelDescription
from models.runtime.postprocess import finish_embeddings, pool_windows, rank_labels, sigmoid, softmax
from models.runtime.tokenization import TextTokenizer, TokenizedText, input_chars
from models.runtime.types import Direction, ModelInput
from service.engine.batcher import Batcher, BatchStats
from service.engine.cached import CachedRows
from service.engine.cores import CoreShare
from service.engine.on_loop import LoopBatches
from service.engine.on_workers import WorkerBatches
from service.engine.queue import BatchQueue, QueueLimits
from service.engine.usage import Usage
from service.errors import InvalidInputError

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: What to do with an input over the model's token limit: cut it, refuse it (422), or embed it in windows.
LongInputs = Literal["truncate", "error", "chunk"]
#: Tokens shared by consecutive windows of a chunked input (so no sentence is only ever seen cut).
CHUNK_OVERLAP_TOKENS = 32
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
    #: Put before every input (a resolved prompt; see :meth:`ModelEngine.prompt_text`).
    prompt: str = ""
    #: None: ``error`` when not ``truncate``, else the model's own setting.
    long_inputs: LongInputs | None = None


@dataclass(frozen=True)
class ClassifyOptions:
    """Options that change a classification."""

    raw_scores: bool = False
    top_k: int | None = None
    truncate: bool = True
    direction: Direction = "right"
    cache: CachePolicy = "use"


@dataclass(frozen=True)
class RerankOptions:
    """Options that change a reranking."""

    raw_scores: bool = False
    truncate: bool = True
    direction: Direction = "right"
    cache: CachePolicy = "use"


@dataclass(frozen=True)
class RerankBlend:
    """A reranker's partner (the ``rerank_with`` setting): a bi-encoder whose cosine of query and
    document is blended into each score. A cross-encoder and a bi-encoder err differently, so the blend
    ranks better than either (benchmarks/RESULTS.md)."""

    embedder: ModelEngine
    #: The cross-encoder's share of the score.
    weight: float

    async def cosines(
        self, query: str, documents: list[str], options: RerankOptions
    ) -> tuple[np.ndarray, Usage]:
        """Cosine of each document's embedding with the query's (through the embedder's cache)."""
        engine = self.embedder
        embed = EmbedOptions(
            truncate=options.truncate,
            direction=options.direction,
            cache=options.cache,
            prompt=engine.prompt_text(None, None),
        )
        result = await engine.embed([query, *documents], embed)
        return result.vectors[1:] @ result.vectors[0], result.usage


@dataclass
class RerankResult:
    """One relevance score per document, in document order (sigmoid of the logit unless raw)."""

    scores: np.ndarray
    usage: Usage = field(default_factory=Usage)


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
    #: The model's handling of over-long embedding inputs when a request does not choose.
    long_inputs: LongInputs = "truncate"
    #: A lone batch of at most this many padded tokens runs on the event loop (0: never).
    loop_batch_tokens: int = 0


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
        cores: CoreShare | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.tokenizer = tokenizer
        self.backend = backend
        self.config = config
        self._tokenize_pool = tokenize_pool
        self.cached = cached
        self.queue = BatchQueue(config.queue)
        self.batcher = Batcher(name, self.queue, tokenizer, backend, config.max_wait_s, on_batch, cores)
        #: Small lone batches on the event loop's thread (CPU models, when the settings allow it; not
        #: when batches are told to wait for company).
        self.on_loop = (
            LoopBatches(self.batcher, cores, config.loop_batch_tokens, config.queue)
            if cores is not None and config.loop_batch_tokens > 0 and config.max_wait_s == 0
            else None
        )
        self.on_workers = WorkerBatches(self.queue, config.request_timeout_s)
        #: Set by the registry for a reranker configured with ``rerank_with``.
        self.blend: RerankBlend | None = None

    @property
    def task(self) -> str:
        """``embed`` or ``classify``."""
        return self.description.task

    @property
    def kind(self) -> str:
        """What the model is, in words for errors: embed, classify, or rerank (one label)."""
        return "rerank" if self.serves("rerank") else self.task

    def serves(self, task: str) -> bool:
        """Whether this model does ``task``: its own, or ``rerank`` for a classifier with one label (a
        cross-encoder's relevance logit)."""
        if task == "rerank":
            return self.task == "classify" and len(self.description.labels) == 1
        return task == "any" or self.task == task

    def start(self) -> None:
        """Start taking batches."""
        self.batcher.start()

    def prompt_text(self, name: str | None, text: str | None) -> str:
        """The prompt to put before inputs: ``text`` if given, else the named prompt, else the model's
        default prompt (empty if none); an unknown name is a 422 that lists the known ones."""
        if text is not None:
            return text
        name = name or self.description.default_prompt_name
        if name is None:
            return ""
        prompts = self.description.prompts
        if name not in prompts:
            known = ", ".join(sorted(prompts)) or "none"
            raise InvalidInputError(
                f"prompt_name {name!r} is not a prompt of model {self.name!r} (known: {known})"
            )
        return prompts[name]

    def long_inputs(self, options: EmbedOptions) -> LongInputs:
        """How ``options`` treat over-long inputs (request, then ``truncate: false``, then the model)."""
        if options.long_inputs is not None:
            return options.long_inputs
        return self.config.long_inputs if options.truncate else "error"

    async def embed(self, texts: list[str], options: EmbedOptions) -> EmbedResult:
        """Embed ``texts`` (already validated as non-empty strings), each after the options' prompt."""
        dims = options.dimensions
        if dims is not None and dims > self.description.hidden_size:
            raise InvalidInputError(f"dimensions {dims} exceeds the model's {self.description.hidden_size}")
        inputs: list[ModelInput] = (
            [options.prompt + text for text in texts] if options.prompt else list(texts)
        )
        mode = self.long_inputs(options)
        rows, usage = await self._rows(
            inputs, mode != "error", options.direction, options.cache, mode == "chunk"
        )
        return EmbedResult(finish_embeddings(rows, options.normalize, dims), usage)

    async def classify(self, texts: list[ModelInput], options: ClassifyOptions) -> ClassifyResult:
        """Classify ``texts`` (texts or pairs); scores are softmax probabilities unless ``raw_scores``
        (a one-label model's score is the sigmoid of its logit: softmax of one value is always 1)."""
        rows, usage = await self._rows(texts, options.truncate, options.direction, options.cache)
        probabilities = sigmoid if rows.shape[1] == 1 else softmax
        scores = rows if options.raw_scores else probabilities(rows)
        return ClassifyResult(rank_labels(scores, self.description.labels, options.top_k), usage)

    async def rerank(self, query: str, documents: list[str], options: RerankOptions) -> RerankResult:
        """Score each ``(query, document)`` pair; the documents share batches with every other request
        (a long list is spread over several), and each pair's logit is cached on its own. With a
        :class:`RerankBlend`, the score is the blend of the sigmoid and the partner's cosine (computed
        concurrently; ``raw_scores`` changes nothing)."""
        pairs: list[ModelInput] = [(query, document) for document in documents]
        scored = self._rows(pairs, options.truncate, options.direction, options.cache)
        if self.blend is None:
            rows, usage = await scored
            logits = rows[:, 0]
            return RerankResult(logits if options.raw_scores else sigmoid(logits), usage)
        (rows, usage), (cosines, embed_usage) = await asyncio.gather(
            scored, self.blend.cosines(query, documents, options)
        )
        weight = self.blend.weight
        scores = weight * sigmoid(rows[:, 0]) + (1 - weight) * cosines
        return RerankResult(scores.astype(np.float32), usage.merged(embed_usage))

    async def _rows(
        self,
        texts: list[ModelInput],
        truncate: bool,
        direction: Direction,
        policy: CachePolicy,
        chunk: bool = False,
    ) -> tuple[np.ndarray, Usage]:
        """Model rows for ``texts``, through the cache unless the policy says otherwise; ``chunk``: an
        over-long text's row is the token-weighted mean of its windows' rows (cached as such)."""

        async def compute(subset: list[ModelInput]) -> tuple[np.ndarray, Usage]:
            try:
                return await self._run(subset, truncate, direction, chunk)
            except InputTooLongError as exc:  # report the index in the client's own list
                raise InputTooLongError(texts.index(subset[exc.index]), exc.tokens, exc.limit) from exc

        # Refusing over-long inputs is cached apart: a row cut to fit must not answer a request that
        # asks to refuse the input instead.
        mode = "chunk" if chunk else ("" if truncate else "error")
        if self.cached is None or policy == "bypass":
            return await self._run(texts, truncate, direction, chunk)
        if policy == "refresh":
            return await self.cached.refresh(texts, direction, compute, mode)
        return await self.cached.rows(texts, direction, compute, mode)

    async def _run(
        self, texts: list[ModelInput], truncate: bool, direction: Direction, chunk: bool = False
    ) -> tuple[np.ndarray, Usage]:
        self.queue.admit()  # 429 at once when full: before any work is spent on the request
        try:
            return await self._tokenize_and_wait(texts, truncate, direction, chunk)
        finally:
            self.queue.release()

    def _tokenize(
        self, texts: list[ModelInput], truncate: bool, direction: Direction, chunk: bool
    ) -> tuple[list[TokenizedText], list[int] | None]:
        if not chunk:
            return self.tokenizer.encode(texts, truncate, direction), None
        return self.tokenizer.windows([str(text) for text in texts], CHUNK_OVERLAP_TOKENS)

    async def _tokenize_and_wait(
        self, texts: list[ModelInput], truncate: bool, direction: Direction, chunk: bool = False
    ) -> tuple[np.ndarray, Usage]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        deadline = started + self.config.request_timeout_s
        request = None
        if input_chars(texts) <= self.config.inline_tokenize_chars:
            # A short request tokenizes in tens of microseconds: less than two thread hand-offs.
            items, owners = self._tokenize(texts, truncate, direction, chunk)
            if self.on_loop is not None and self.on_loop.eligible(items):
                request = await self.on_loop.run(items, deadline)
        else:
            items, owners = await loop.run_in_executor(
                self._tokenize_pool, self._tokenize, texts, truncate, direction, chunk
            )
        if request is None:
            request = await self.on_workers.run(items, deadline)
        if request.error is not None:
            raise request.error
        assert request.rows is not None
        assert request.first_batch_at is not None
        rows, item_tokens = request.rows, [item.tokens for item in items]
        if owners is not None:  # windows of chunked inputs: one row and one token count per text
            rows = pool_windows(rows, owners, item_tokens, len(texts))
            item_tokens = np.bincount(owners, weights=item_tokens, minlength=len(texts)).astype(int).tolist()
        usage = Usage(
            item_tokens=item_tokens,
            truncated=sum(item.truncated for item in items),
            tokenize_s=request.enqueued_at - started,
            queue_s=request.first_batch_at - request.enqueued_at,
            inference_s=request.last_batch_end - request.first_batch_at,
            chunks=len(items) if owners is not None else 0,
        )
        return rows, usage

    async def tokenizer_work(self, work: Callable[..., T], *args: object, chars: int = 0) -> T:
        """Run tokenizer ``work`` (``/tokenize``, ``/decode``) inline when small (``chars``), else in the
        tokenizer pool, as requests are tokenized."""
        if chars <= self.config.inline_tokenize_chars:
            return work(*args)
        return await asyncio.get_running_loop().run_in_executor(self._tokenize_pool, work, *args)

    def warm_up(self) -> None:
        """Run one small batch so the first request does not pay for lazy initialisation."""
        items = self.tokenizer.encode(["bertserve warm-up sentence."], truncate=True)
        self.backend.forward(self.tokenizer.collate(items, self.backend.token_multiple))

    def close(self) -> None:
        """Stop the batcher thread at shutdown: the batch inside the model finishes, queued inputs are
        dropped. By then the server has answered every request it finished in its grace period and
        cancelled the others, so nobody waits for them (draining them could take minutes)."""
        dropped = self.queue.discard()
        if dropped:
            logger.warning("model %s: %d queued inputs dropped at shutdown", self.name, dropped)
        self.batcher.stop()
