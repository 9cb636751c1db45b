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


def json_response(content: Any, headers: dict[str, str] | None = None) -> Response:
    """Serialise with orjson, numpy arrays included (float rows dominate response time: orjson writes
    a float32 row ~20x faster than json.dumps of its list, in the shortest form that reads back exactly)."""
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, media_type="application/json", headers=headers)


def usage_headers(usage: Usage, started: float) -> dict[str, str]:
    """Timing (ms) and cost headers of a served request; ``started`` is the handler's start.
    ``x-chunks``: windows computed for inputs embedded in chunks, when there were any."""
    headers = {
        "x-compute-tokens": str(usage.tokens),
        "x-tokenization-time": f"{usage.tokenize_s * 1000:.3f}",
        "x-queue-time": f"{usage.queue_s * 1000:.3f}",
        "x-inference-time": f"{usage.inference_s * 1000:.3f}",
        "x-total-time": f"{(time.perf_counter() - started) * 1000:.3f}",
    }
    if usage.chunks:
        headers["x-chunks"] = str(usage.chunks)
    return headers


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it if the client disconnects first (its queued items are dropped)."""
    task = asyncio.ensure_future(work)
    await asyncio.sleep(0)  # let it run: a cache hit finishes here, with no watcher to set up
    if task.done():
        return task.result()
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if not task.done() or task.cancelled():
        raise ClientDisconnectedError("client disconnected")
    return task.result()


async def _disconnected(request: Request) -> None:
    # The body is already read, so the next message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


def record_usage(metrics: Metrics, model: str, usage: Usage) -> None:
    """Observe a served request in the model-level metrics (stage times only if the model ran: a
    request answered from the cache would otherwise pull every stage histogram towards zero)."""
    if not usage.item_tokens:
        return
    metrics.tokenization_duration.labels(model).observe(usage.tokenize_s)
    metrics.inference_duration.labels(model).observe(usage.inference_s)
    metrics.queue_duration.labels(model).observe(usage.queue_s)
    histogram = metrics.input_tokens.labels(model)
    for tokens in usage.item_tokens:
        histogram.observe(tokens)
    if usage.truncated:
        metrics.truncated_inputs.labels(model).inc(usage.truncated)


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
        return await unless_disconnected(self.request, work)

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
