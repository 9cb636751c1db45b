"""Whether a loaded model can take more work: what /ready reports once models are in.

A balancer routes by /ready, so it must turn 503 when sending this replica more requests would only make
them wait or fail: the model worker is wedged (a batch inside the model for far longer than any batch
should take, or the batcher thread gone), or the queue has stayed saturated for a while. Both recover by
themselves (the batch ends, the queue drains), and /ready turns 200 again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from service.engine.model_engine import ModelEngine


@dataclass(frozen=True)
class HealthLimits:
    """Thresholds from the settings (0 turns a check off)."""

    max_batch_s: float
    saturated_s: float


@dataclass(frozen=True)
class Unready:
    """Why /ready answers 503: ``error_type`` names the state, ``message`` says it to a person."""

    error_type: str
    message: str


def engine_problem(engine: ModelEngine, limits: HealthLimits, now: float | None = None) -> Unready | None:
    """Why ``engine`` should take no new work now, or None when it is healthy."""
    now = time.perf_counter() if now is None else now
    batcher = engine.batcher
    if not batcher.alive:
        return Unready("wedged", f"model {engine.name!r}: its batcher thread has stopped")
    started = batcher.batch_started
    if limits.max_batch_s > 0 and started is not None and now - started > limits.max_batch_s:
        return Unready("wedged", f"model {engine.name!r}: a batch has been running for {now - started:.0f} s")
    since = engine.queue.saturated_since
    if limits.saturated_s > 0 and since is not None and now - since >= limits.saturated_s:
        return Unready("saturated", f"model {engine.name!r}: queue saturated for {now - since:.0f} s")
    return None
