"""Helpers shared by the inference routes: fast JSON, usage headers and metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from fastapi import Request, Response

from models.runtime.types import ModelInput
from service.engine.model_engine import CachePolicy, ModelEngine
from service.engine.usage import Usage
from service.errors import ClientDisconnectedError
from service.http.deps import Serving
from service.http.schemas import check_inputs
from service.metrics import Metrics

T = TypeVar("T")


class _EncodedJSON(Response):
    """A 200 JSON answer whose headers are already encoded (Starlette's ``init_headers`` re-encodes and
    scans them: ~10% of a cache hit's CPU)."""

    media_type = "application/json"

    def __init__(self, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:  # no super(): all set
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = raw_headers


RawHeaders = list[tuple[bytes, bytes]]


def json_response(content: Any, headers: RawHeaders | None = None) -> Response:
    """Serialise with orjson, numpy arrays included (float rows dominate response time: orjson writes
    a float32 row ~20x faster than json.dumps of its list, in the shortest form that reads back exactly);
    ``headers``: more headers, encoded (lower-case names)."""
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    raw = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    if headers:
        raw += headers
    return _EncodedJSON(body, raw)


def usage_headers(usage: Usage, started: float) -> RawHeaders:
    """Timing (ms) and cost headers of a served request, encoded; ``started`` is the handler's start.
    ``x-chunks``: windows computed for inputs embedded in chunks, when there were any."""
    headers = [
        (b"x-compute-tokens", b"%d" % usage.tokens),
        (b"x-tokenization-time", b"%.3f" % (usage.tokenize_s * 1000)),
        (b"x-queue-time", b"%.3f" % (usage.queue_s * 1000)),
        (b"x-inference-time", b"%.3f" % (usage.inference_s * 1000)),
        (b"x-total-time", b"%.3f" % ((time.perf_counter() - started) * 1000)),
    ]
    if usage.chunks:
        headers.append((b"x-chunks", b"%d" % usage.chunks))
    return headers


async def unless_disconnected(request: Request, work: Awaitable[T], after_s: float = 0.0) -> T:
    """Await ``work`` in this task, cancelling it if the client disconnects first (its queued items are
    dropped). The watcher (one task reading the connection, ~20 us of CPU) starts only once ``work`` has
    waited ``after_s`` (at least one loop turn: a cache hit never creates it); there is no second task
    for ``work`` and no ``asyncio.wait`` per request."""
    this = asyncio.current_task()
    assert this is not None
    watch = _Watch(request, this)
    loop = asyncio.get_running_loop()
    start = loop.call_later(after_s, watch.start) if after_s > 0 else loop.call_soon(watch.start)
    try:
        return await work
    except asyncio.CancelledError:
        if not watch.gone:  # cancelled from outside (shutdown): not ours to turn into an answer
            raise
        this.uncancel()
        raise ClientDisconnectedError("client disconnected") from None
    finally:
        start.cancel()
        watch.stop()


class _Watch:
    """Cancels ``task`` when the client disconnects."""

    __slots__ = ("gone", "request", "task", "watcher")

    def __init__(self, request: Request, task: asyncio.Task[Any]) -> None:
        self.request = request
        self.task = task
        self.gone = False
        self.watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.watcher = asyncio.get_running_loop().create_task(self._watch())

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()

    async def _watch(self) -> None:
        # The body is already read, so the next message can only be the disconnect.
        while (await self.request.receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.task.cancel()


def record_usage(metrics: Metrics, model: str, usage: Usage) -> None:
    """Observe a served request in the model-level metrics (stage times only if the model ran: a
    request answered from the cache would otherwise pull every stage histogram towards zero)."""
    if not usage.item_tokens:
        return
    stages = metrics.stages(model)
    stages.tokenization.observe(usage.tokenize_s)
    stages.inference.observe(usage.inference_s)
    stages.queue.observe(usage.queue_s)
    for tokens in usage.item_tokens:
        stages.input_tokens.observe(tokens)
    if usage.truncated:
        stages.truncated.inc(usage.truncated)


def cache_policy(request: Request) -> CachePolicy:
    """The request's cache use, from its Cache-Control header (no-store: bypass; no-cache: refresh)."""
    # A scan of the raw headers: Starlette's ``headers.get`` raises and catches KeyError when the
    # header is absent (the usual case), which cost ~5% of the event loop at concurrency 64.
    directives = next(
        (
            value.decode("latin-1").lower()
            for name, value in request.scope["headers"]
            if name == b"cache-control"
        ),
        "",
    )
    if "no-store" in directives:
        return "bypass"
    if "no-cache" in directives:
        return "refresh"
    return "use"


def label_model(request: Request, model: str) -> None:
    """Name the model in the request state, for the request metrics."""
    request.state.model = model


@dataclass
class InferenceCall:
    """One inference request inside a route: validated texts, the engine, the clock."""

    request: Request
    serving: Serving
    engine: ModelEngine
    texts: list[ModelInput]
    started: float

    @classmethod
    def begin(
        cls,
        request: Request,
        serving: Serving,
        inputs: str | Sequence[ModelInput],
        model: str | None,
        task: str,
        max_inputs: int | None = None,
    ) -> InferenceCall:
        """Check the inputs against the limits and pick the model (errors map to 4xx); ``max_inputs``
        replaces the per-request input limit (rerank's document limit)."""
        started = time.perf_counter()
        texts = check_inputs(inputs, serving.limits, max_inputs)
        engine = serving.registry.get(model, task)
        label_model(request, engine.name)
        return cls(request, serving, engine, texts, started)

    @property
    def strings(self) -> list[str]:
        """The inputs of a route that takes texts only (its schema admits no pairs)."""
        return [text for text in self.texts if isinstance(text, str)]

    @property
    def cache(self) -> CachePolicy:
        """The request's cache policy."""
        return cache_policy(self.request)

    async def run(self, work: Awaitable[T]) -> T:
        """Await the engine, unless the client goes away first."""
        return await unless_disconnected(self.request, work, self.serving.disconnect_check_s)

    def respond(self, usage: Usage, content: Any) -> Response:
        """Record the usage and answer ``content`` with the timing headers."""
        record_usage(self.serving.metrics, self.engine.name, usage)
        self.request.state.usage_fields = {
            "items": len(self.texts),
            "tokens": usage.input_tokens,
            "computed_tokens": usage.tokens,
            "tokenize_ms": round(usage.tokenize_s * 1000, 3),
            "queue_ms": round(usage.queue_s * 1000, 3),
            "inference_ms": round(usage.inference_s * 1000, 3),
        }
        return json_response(content, usage_headers(usage, self.started))
