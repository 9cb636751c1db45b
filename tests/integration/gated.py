"""A wrapper around a real backend that tests use to hold, count and break model calls."""

from __future__ import annotations

import threading

import numpy as np

from models.runtime.tokenization import ModelInputs
from service.engine.model_engine import ModelEngine


class GatedBackend:
    """Wraps a real backend: records every batch, can hold batches at a gate, can fail on demand."""

    def __init__(self, engine: ModelEngine) -> None:
        self.inner = engine.backend
        self.device, self.dtype = self.inner.device, self.inner.dtype
        # The engine's workers were started for the inner backend's streams.
        self.streams = engine.batcher.workers
        self.lone_all_threads = self.inner.lone_all_threads
        self.token_multiple = self.inner.token_multiple
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        #: Batches inside ``forward`` now, and the most there ever were at once.
        self.inside = self.most_inside = 0
        self._count = threading.Lock()
        self.batches: list[list[list[int]]] = []
        #: Per forward call, the padded batch's (inputs, tokens).
        self.shapes: list[tuple[int, ...]] = []
        #: Per forward call, in call order: whether the batcher ran it alone.
        self.alone: list[bool] = []
        self.fail_marker: int | None = None
        engine.backend = engine.batcher.backend = self
        # A batch held at the gate on the event loop's thread would hold the test's loop too: every
        # batch goes to the workers.
        engine.on_loop = None

    def forward(self, batch: ModelInputs, alone: bool = False) -> np.ndarray:
        with self._count:
            self.alone.append(alone)
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            return self._forward(batch, alone)
        finally:
            with self._count:
                self.inside -= 1

    def _forward(self, batch: ModelInputs, alone: bool) -> np.ndarray:
        self.entered.set()
        assert self.gate.wait(20), "test gate never opened"
        rows = [
            ids[mask == 1].tolist() for ids, mask in zip(batch.input_ids, batch.attention_mask, strict=True)
        ]
        self.batches.append(rows)
        self.shapes.append(batch.input_ids.shape)
        if self.fail_marker is not None and any(self.fail_marker in row for row in rows):
            raise RuntimeError("CUDA error: secret internal detail")
        return self.inner.forward(batch, alone)
