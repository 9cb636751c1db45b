"""The one place where the :class:`~service.metrics.Metrics` of an app are connected to its models.

The loader builds engines without knowing about metrics; the registry hands each loaded model to
:meth:`EngineMetrics.connect` before it reports ready, so no request can reach an unconnected engine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from service.engine.batcher import BatchStats
from service.engine.loader import LoadedModel
from service.engine.queue import BatchQueue
from service.metrics import Metrics


class EngineMetrics:
    """Connects one app's metrics to its loaded models."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def connect(self, loaded: LoadedModel) -> None:
        """Per-batch, single-flight and queue metrics of ``loaded``'s engine, and its load-time gauges."""
        metrics, engine, name = self.metrics, loaded.engine, loaded.spec.name
        engine.batcher.on_batch = self.batch_observer(name)
        if engine.cached is not None:
            engine.cached.on_join = metrics.cache_joins.inc
        metrics.model_load_seconds.labels(name).set(loaded.load_seconds)
        metrics.queue_depth.labels(name).set_function(functools.partial(_depth, engine.queue, 1))
        metrics.in_flight.labels(name).set_function(functools.partial(_depth, engine.queue, 0))
        description = engine.description
        metrics.model_info.labels(name).info(
            {
                "source": loaded.spec.source,
                "fingerprint": description.fingerprint,
                "task": description.task,
                "variant": (description.variant or {}).get("recipe", "base"),
                "runtime": loaded.runtime,
                "device": loaded.device,
                "dtype": loaded.dtype,
                "reason": loaded.reason,
            }
        )
        if loaded.drift is not None:
            metrics.model_drift.labels(name, "min").set(loaded.drift.min_cosine)
            metrics.model_drift.labels(name, "mean").set(loaded.drift.mean_cosine)

    def ready(self, answers: Callable[[], bool]) -> None:
        """Every model is loaded and connected: from now on the gauge follows ``answers`` (what /ready
        says, draining, wedged and saturated included), sampled at each scrape."""
        self.metrics.ready.set_function(lambda: float(answers()))

    def batch_observer(self, model: str) -> Callable[[BatchStats], None]:
        """Records one model call of ``model`` (children resolved once, not per batch)."""
        metrics = self.metrics
        size, tokens = metrics.batch_size.labels(model), metrics.batch_tokens.labels(model)
        padding, seconds = metrics.padding_ratio.labels(model), metrics.batch_duration.labels(model)
        on_loop = metrics.loop_batches.labels(model)

        def observe(stats: BatchStats) -> None:
            size.observe(stats.items)
            tokens.observe(stats.padded_tokens)
            padding.observe(1 - stats.tokens / stats.padded_tokens)
            seconds.observe(stats.seconds)
            if stats.on_loop:
                on_loop.inc()

        return observe


def _depth(queue: BatchQueue, field: int) -> float:
    return float(queue.depth[field])
