"""Which model batch may run on every CPU thread: one decision for all the CPU models of a server.

On CPU each model runs two batches at once by default, each on half the threads (``streams``). A batch
that runs alone, with nothing else to do, may take every thread instead (``lone_batch_all_threads``): at
low load a request is then not held to half the cores. Two rules keep that from oversubscribing them:

- a batch runs alone only if no batch of any CPU model is running and no request is in any CPU model's
  engine (waiting, being tokenized, or about to be queued): at c4 another request nearly always is, and a
  batch on every thread would only hold it back;
- while a lone batch runs, a batch taken meanwhile, by any CPU model, waits for it to end; started beside
  it, three threads would share two cores and both batches would straggle.

A batch that had to wait met another one, so the load is not low: it runs on its stream's share.

A small lone batch may also run on the event loop's thread (:mod:`service.engine.on_loop`): it is claimed
with :meth:`CoreShare.claim_for_loop`, never waits, and holds every other batch back while it runs.
"""

from __future__ import annotations

import threading

from service.engine.queue import BatchQueue


class CoreShare:
    """The CPU threads' one arbiter, shared by every CPU model's batch workers (a GPU model has its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lone_done = threading.Condition(self._lock)
        self._queues: list[BatchQueue] = []
        #: Batches taken and not yet finished, every model's.
        self._busy = 0
        self._lone_running = False

    def watch(self, queue: BatchQueue) -> None:
        """Count ``queue``'s requests when deciding whether a batch is alone."""
        self._queues.append(queue)

    def claim(self, own_requests: int, all_threads: bool) -> bool:
        """Count a taken batch of ``own_requests`` requests as running; return whether it runs alone.
        ``all_threads``: its backend gives a lone batch every thread (others wait while it runs)."""
        waited = False
        while True:
            quiet = self._quiet(own_requests)  # each queue's own lock: not taken inside ours
            with self._lock:
                if not self._lone_running:
                    alone = quiet and self._busy == 0 and not waited
                    self._busy += 1
                    self._lone_running = alone and all_threads
                    return alone
                self._lone_done.wait()
                waited = True

    def quiet_for(self, own_requests: int) -> bool:
        """Whether nothing but ``own_requests`` requests is in any CPU model's engine and no batch runs
        (a snapshot: :meth:`claim_for_loop` decides)."""
        return self._busy == 0 and self._quiet(own_requests)

    def claim_for_loop(self, own_requests: int) -> bool:
        """Claim the CPU for a lone batch run by the caller itself, without waiting: True only if the
        engines are quiet and no batch runs; every batch taken meanwhile then waits for
        :meth:`release` (``alone=True``)."""
        quiet = self._quiet(own_requests)
        with self._lock:
            if not quiet or self._busy or self._lone_running:
                return False
            self._busy += 1
            self._lone_running = True
            return True

    def release(self, alone: bool) -> None:
        """The batch :meth:`claim` counted has finished (``alone``: what claim returned)."""
        with self._lock:
            self._busy -= 1
            if alone and self._lone_running:
                self._lone_running = False
                self._lone_done.notify_all()

    def _quiet(self, own_requests: int) -> bool:
        requests = waiting = 0
        for queue in self._queues:
            in_engine, queued, _ = queue.depth
            requests += in_engine
            waiting += queued
        return waiting == 0 and requests <= own_requests
