"""A small batch with nothing else to do runs on the event loop's thread, not a batch worker's.

At low load a request's batch would otherwise cross two thread hand-offs (:mod:`service.engine.on_workers`):
the queue wakes a batch worker, and the worker wakes the event loop to answer (together 0.25-1.6 ms at c1
on 2 cores, 3-20% of a short sentence's model time: benchmarks/RESULTS.md). Run on the loop's own thread, the
batch needs neither.

The loop cannot read sockets while the batch runs, so two rules keep this to low load:

- the batch is small (``max_tokens`` padded tokens at most): the loop is held for a few milliseconds;
  and it is the batch the workers would make of the same items (one batch within the queue's limits and
  length ratio, sorted by length), so a request gets the same rows, to the bit, whichever runs it;
- nothing else is in any CPU model's engine, and that still holds after two turns of the loop. The turns
  matter: requests that arrived while the loop was busy are still unread in their sockets, and each of
  them, read one after the other, would otherwise find the engines empty and run alone in turn, one at a
  time (c64 at 40% of its throughput, measured). After two turns every request that had arrived has been
  read, tokenized and admitted, so the first of them sees the others and they all queue as usual.

A batch run here is claimed from the :class:`CoreShare` like a lone worker batch: batches taken meanwhile
wait until it ends.
"""

from __future__ import annotations

import asyncio

from models.runtime.tokenization import TokenizedText
from service.engine.batcher import Batcher
from service.engine.cores import CoreShare
from service.engine.queue import PendingRequest, QueueLimits, WorkItem

#: Loop turns to wait before a batch runs on the loop: one to let the loop poll its sockets, one for the
#: requests read then to reach their engine (see the module docstring).
TURNS = 2


class LoopBatches:
    """Runs a lone small batch of one request on the event loop's thread (see the module docstring)."""

    def __init__(self, batcher: Batcher, cores: CoreShare, max_tokens: int, limits: QueueLimits) -> None:
        self.batcher = batcher
        self.cores = cores
        self.max_tokens = min(max_tokens, limits.batch_tokens)
        self.limits = limits

    def eligible(self, items: list[TokenizedText]) -> bool:
        """Whether ``items`` make one small batch, as the workers would make it, and the engines look
        quiet (a cheap first check)."""
        if not items or len(items) > self.limits.batch_items:
            return False
        longest = max(item.tokens for item in items)
        shortest = min(item.tokens for item in items)
        return (
            len(items) * longest <= self.max_tokens
            and self.limits.length_ratio * shortest >= longest
            and self.cores.quiet_for(1)
        )

    async def run(self, items: list[TokenizedText], deadline: float) -> PendingRequest | None:
        """Run ``items`` as one batch here and return their settled request; None when the engines are
        no longer quiet after :data:`TURNS` turns of the loop (the caller queues them instead)."""
        for _ in range(TURNS):
            await asyncio.sleep(0)
        if not self.cores.claim_for_loop(1):
            return None
        request = PendingRequest(len(items), deadline, _answered_by_caller)
        try:
            order = sorted(range(len(items)), key=lambda index: items[index].tokens)  # as the queue does
            batch = [WorkItem(request, index, items[index]) for index in order]
            self.batcher.run_batch(batch, alone=True, on_loop=True)
        finally:
            self.cores.release(True)
        return request


def _answered_by_caller(requests: list[PendingRequest]) -> None:
    """A batch run on the loop settles nothing: its caller reads the request when the batch returns."""
