"""The batcher: one worker thread per model stream that takes batches from the queue and runs them.

A backend declares how many batches it runs at once (``streams``: 1 for PyTorch and GPUs, 2 by default
for ONNX Runtime and OpenVINO on CPU, each stream on its share of the threads), and only these workers
call it. A batch with nothing else to do may run alone, on every thread: :mod:`service.engine.cores`
decides, for all the CPU models at once. Items whose request was cancelled, failed or ran past its
deadline are dropped here, before they reach the model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.runtime.contract import EncoderBackend
from models.runtime.errors import DeviceOutOfMemoryError
from models.runtime.tokenization import TextTokenizer
from service.engine.cores import CoreShare
from service.engine.queue import BatchQueue, PendingRequest, WorkItem
from service.errors import DeadlineExceededError, InferenceError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchStats:
    """What one model call did, for metrics."""

    items: int
    tokens: int
    padded_tokens: int
    seconds: float
    #: Run on the event loop's thread (:mod:`service.engine.on_loop`), not a batch worker's.
    on_loop: bool = False


class Batcher:
    """Runs the model on batches from ``queue`` until the queue is closed and drained."""

    def __init__(
        self,
        name: str,
        queue: BatchQueue,
        tokenizer: TextTokenizer,
        backend: EncoderBackend,
        max_wait_s: float,
        on_batch: Callable[[BatchStats], None] | None = None,
        cores: CoreShare | None = None,
    ) -> None:
        self.name = name
        self.queue = queue
        self.tokenizer = tokenizer
        self.backend = backend
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        streams = backend.streams
        self._settle = threading.Lock()
        #: Decides which batch runs alone: shared by the server's CPU models, else this model's own.
        self.cores = cores or CoreShare()
        self.cores.watch(queue)
        self._all_threads = backend.lone_all_threads
        self._threads = [
            threading.Thread(target=self._loop, name=f"batcher-{name}-{index}", daemon=True)
            for index in range(streams)
        ]
        #: Per worker: ``time.perf_counter()`` when its batch entered the model; absent between batches.
        self._started: dict[int, float] = {}

    @property
    def alive(self) -> bool:
        """Whether every worker thread is running."""
        return all(thread.is_alive() for thread in self._threads)

    @property
    def workers(self) -> int:
        """How many batches may be inside the model at once."""
        return len(self._threads)

    @property
    def batch_started(self) -> float | None:
        """When the oldest batch now inside the model started; None while no batch is."""
        # A snapshot: the workers add and remove their entries meanwhile.
        return min(tuple(self._started.values()), default=None)

    def start(self) -> None:
        """Start the worker threads."""
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Close the queue, let the workers finish what is queued, and join them."""
        self.queue.close()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        while (batch := self.queue.take(self.max_wait_s)) is not None:
            alone = self.cores.claim(len({id(item.request) for item in batch}), self._all_threads)
            try:
                self.run_batch(batch, alone)
            finally:
                self.cores.release(alone)

    def run_batch(self, batch: list[WorkItem], alone: bool = False, on_loop: bool = False) -> None:
        """Drop dead items, run the rest (``alone``: see :meth:`EncoderBackend.forward`), and hand each
        row to its request; the requests the batch finished are then announced together (one
        ``on_done`` call per callback, not per request). ``on_loop``: the caller is the event loop."""
        finished: list[PendingRequest] = []
        try:
            self._run_live(batch, finished, alone, on_loop)
        finally:
            _announce(finished)

    def _run_live(
        self, batch: list[WorkItem], finished: list[PendingRequest], alone: bool, on_loop: bool
    ) -> None:
        live = [item for item in batch if item.request.live]
        # Workers share requests (a client batch spreads over several model batches): every change
        # to a request's rows, count or error happens under one lock, so exactly one worker finishes it.
        with self._settle:
            for item in batch:
                request = item.request
                if not request.live and request.error is None and not request.abandoned:
                    _finish(request, DeadlineExceededError("deadline passed while queued"), finished)
        if not live:
            return
        outcome = self._forward(live, alone, on_loop)
        with self._settle:
            if isinstance(outcome, BaseException):
                _fail_all(live, outcome, finished)
                return
            rows, started, ended = outcome
            for item, row in zip(live, rows, strict=True):
                _deliver(item, row, started, ended, finished)

    def _forward(
        self, live: list[WorkItem], alone: bool, on_loop: bool
    ) -> tuple[np.ndarray, float, float] | BaseException:
        """Run the model on ``live``: (rows, start, end), or the error to fail the batch's requests with."""
        inputs = self.tokenizer.collate([item.tokens for item in live], self.backend.token_multiple)
        worker = threading.get_ident()
        started = self._started[worker] = time.perf_counter()
        try:
            rows = self.backend.forward(inputs, alone)
        except DeviceOutOfMemoryError as exc:  # retryable (503): the model runs the next batch as usual
            logger.warning("model %s: %s", self.name, exc)
            return exc
        except Exception:  # a failing batch must fail its requests, not the worker
            logger.exception("model %s failed on a batch of %d inputs", self.name, len(live))
            return InferenceError(f"model {self.name!r} failed to run this batch")
        finally:
            del self._started[worker]
        ended = time.perf_counter()
        if self.on_batch is not None:
            self.on_batch(
                BatchStats(
                    len(live),
                    int(inputs.attention_mask.sum()),
                    int(inputs.attention_mask.size),
                    ended - started,
                    on_loop,
                )
            )
        return rows, started, ended


def _deliver(
    item: WorkItem, row: np.ndarray, started: float, ended: float, finished: list[PendingRequest]
) -> None:
    request = item.request
    if request.error is not None:
        return
    if request.rows is None:
        request.rows = np.empty((request.size, row.shape[0]), dtype=np.float32)
        request.first_batch_at = started
    request.rows[item.index] = row
    request.last_batch_end = ended
    request.remaining -= 1
    if request.remaining == 0:
        finished.append(request)


def _fail_all(items: list[WorkItem], error: BaseException, finished: list[PendingRequest]) -> None:
    for request in {id(i.request): i.request for i in items}.values():
        _finish(request, error, finished)


def _finish(request: PendingRequest, error: BaseException, finished: list[PendingRequest]) -> None:
    if request.error is None:
        request.error = error
        finished.append(request)


def _announce(finished: list[PendingRequest]) -> None:
    groups: dict[int, list[PendingRequest]] = {}
    for request in finished:
        groups.setdefault(id(request.on_done), []).append(request)
    for requests in groups.values():
        try:
            requests[0].on_done(requests)
        except Exception:  # e.g. the waiting event loop closed: the others must still hear
            logger.exception("model batch: a completion callback failed")
