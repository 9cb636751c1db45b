"""Every Prometheus metric of bertserve, prefix ``bertserve_``, on a per-app registry.

No collector lives at import time: :class:`Metrics` is built by ``create_app`` on its own
``CollectorRegistry``, so several apps (tests, replicas in one process) never share counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

PREFIX = "bertserve"


def geometric_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """``count`` bucket bounds from ``start``, each ``factor`` times the previous."""
    return tuple(round(start * factor**i, 6) for i in range(count))


#: Latency buckets from 0.5 ms to ~33 s (one place, used by every duration histogram).
LATENCY_BUCKETS = geometric_buckets(0.0005, 2.0, 17)
#: Power-of-two buckets for batch sizes and token counts.
SIZE_BUCKETS = geometric_buckets(1, 2.0, 16)


@dataclass(frozen=True)
class RequestStages:
    """One model's per-request children, looked up once (``labels()`` takes a lock and builds a key:
    a few microseconds per call, several calls per request)."""

    tokenization: Any
    inference: Any
    queue: Any
    input_tokens: Any
    truncated: Any


class Metrics:
    """The service's collectors."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._stages: dict[str, RequestStages] = {}
        self._served: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        r = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests",
            "HTTP requests by route, model and status",
            ["route", "model", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "HTTP request duration",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokenization_duration = Histogram(
            f"{PREFIX}_tokenization_duration_seconds",
            "Tokenization time per request",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            f"{PREFIX}_inference_duration_seconds",
            "Inference time per request",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_duration = Histogram(
            f"{PREFIX}_queue_duration_seconds",
            "Time from queueing to the first batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            f"{PREFIX}_batch_duration_seconds",
            "Model time per batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size", "Inputs per model batch", ["model"], buckets=SIZE_BUCKETS, registry=r
        )
        self.batch_tokens = Histogram(
            f"{PREFIX}_batch_tokens",
            "Padded tokens per model batch",
            ["model"],
            buckets=geometric_buckets(16, 2.0, 14),
            registry=r,
        )
        self.padding_ratio = Histogram(
            f"{PREFIX}_batch_padding_ratio",
            "Share of padding in a batch",
            ["model"],
            buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0),
            registry=r,
        )
        self.loop_batches = Counter(
            f"{PREFIX}_loop_batches",
            "Batches run on the event loop's thread, not a batch worker's (low load: loop_batch_tokens)",
            ["model"],
            registry=r,
        )
        self.queue_depth = Gauge(f"{PREFIX}_queue_items", "Inputs waiting for a batch", ["model"], registry=r)
        self.in_flight = Gauge(
            f"{PREFIX}_requests_in_flight", "Requests admitted and not yet answered", ["model"], registry=r
        )
        self.rejections = Counter(
            f"{PREFIX}_rejections",
            "Requests refused (429), timed out (504) or out of device memory (503), by reason",
            ["model", "reason"],
            registry=r,
        )
        self.input_tokens = Histogram(
            f"{PREFIX}_input_tokens", "Tokens per input item", ["model"], buckets=SIZE_BUCKETS, registry=r
        )
        self.truncated_inputs = Counter(
            f"{PREFIX}_truncated_inputs", "Inputs cut to the model's token limit", ["model"], registry=r
        )
        self.cache_hits = Counter(f"{PREFIX}_cache_hits", "Cache hits by tier", ["tier"], registry=r)
        self.cache_misses = Counter(f"{PREFIX}_cache_misses", "Cache misses by tier", ["tier"], registry=r)
        self.cache_errors = Counter(
            f"{PREFIX}_cache_errors", "Cache tier errors (Redis down or slow)", ["tier"], registry=r
        )
        self.cache_bytes = Gauge(f"{PREFIX}_cache_bytes", "Bytes held by the in-process cache", registry=r)
        self.cache_entries = Gauge(
            f"{PREFIX}_cache_entries", "Entries held by the in-process cache", registry=r
        )
        self.cache_joins = Counter(
            f"{PREFIX}_cache_inflight_joins",
            "Texts served by joining an identical in-flight computation",
            registry=r,
        )
        self.redis_roundtrip = Histogram(
            f"{PREFIX}_redis_roundtrip_seconds",
            "Redis MGET / pipelined SET round trips",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_load_seconds = Gauge(
            f"{PREFIX}_model_load_seconds", "Seconds taken to load and warm up a model", ["model"], registry=r
        )
        self.model_drift = Gauge(
            f"{PREFIX}_model_drift_cosine",
            "Cosine similarity to the model's reference (variant base, or float32) on the built-in sample",
            ["model", "stat"],
            registry=r,
        )
        self.model_info = Info(f"{PREFIX}_model", "Served model", ["model"], registry=r)
        self.ready = Gauge(f"{PREFIX}_ready", "1 while /ready answers 200", registry=r)

    def stages(self, model: str) -> RequestStages:
        """The per-request stage children of ``model`` (served model names only: a bounded set)."""
        found = self._stages.get(model)
        if found is None:
            found = self._stages[model] = RequestStages(
                self.tokenization_duration.labels(model),
                self.inference_duration.labels(model),
                self.queue_duration.labels(model),
                self.input_tokens.labels(model),
                self.truncated_inputs.labels(model),
            )
        return found

    def served(self, route: str, model: str, status: int) -> tuple[Any, Any]:
        """The ``requests`` and ``request_duration`` children of a request (route templates, served
        model names and statuses: a bounded set)."""
        key = (route, model, status)
        found = self._served.get(key)
        if found is None:
            found = self._served[key] = (
                self.requests.labels(route, model, str(status)),
                self.request_duration.labels(route),
            )
        return found
