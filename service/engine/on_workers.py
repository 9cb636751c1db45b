"""A request's items queued for the batch workers, awaited on the event loop.

Each batch wakes the requests it finished in one thread-safe hop to their loop (not one per request);
a request's deadline is one timer on the loop (not ``asyncio.wait_for``, which wraps the future in a task
and more callbacks). The other way to run a batch, on the loop itself, is :mod:`service.engine.on_loop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

from models.runtime.tokenization import TokenizedText
from service.engine.queue import BatchQueue, OnDone, PendingRequest
from service.errors import DeadlineExceededError


class WorkerBatches:
    """Queues requests' items in ``queue`` and waits until the workers have settled them."""

    def __init__(self, queue: BatchQueue, timeout_s: float) -> None:
        self.queue = queue
        self.timeout_s = timeout_s
        self._notify: tuple[asyncio.AbstractEventLoop, OnDone] | None = None

    def _notifier(self, loop: asyncio.AbstractEventLoop) -> OnDone:
        """The batcher's callback for requests waiting on ``loop``: one thread-safe hop per batch.
        The same object for every request of a loop, so that the batcher can group them."""
        notify = self._notify
        if notify is None or notify[0] is not loop:
            notify = self._notify = (loop, functools.partial(_call_on_loop, loop))
        return notify[1]

    async def run(self, items: list[TokenizedText], deadline: float) -> PendingRequest:
        """Queue ``items`` and return their request once it is settled (rows or error); raises
        :class:`DeadlineExceededError` at ``deadline``. Cancelled (the client went away), the request's
        queued items are dropped."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PendingRequest] = loop.create_future()
        request = PendingRequest(len(items), deadline, self._notifier(loop), future)
        self.queue.put(request, items)
        timer = loop.call_at(loop.time() + max(deadline - time.perf_counter(), 0.0), _expire, request)
        try:
            await future
        except DeadlineExceededError as exc:
            raise DeadlineExceededError(f"not served within {self.timeout_s:g} s") from exc
        except asyncio.CancelledError:
            request.abandoned = True
            raise
        finally:
            timer.cancel()
        return request


def _call_on_loop(loop: asyncio.AbstractEventLoop, requests: list[PendingRequest]) -> None:
    """On the batcher thread: settle ``requests`` on their event loop."""
    with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting any more
        loop.call_soon_threadsafe(_settle, requests)


def _settle(requests: list[PendingRequest]) -> None:
    """On the event loop: wake every request a batch finished."""
    for request in requests:
        future = request.waiter
        if not future.done():
            future.set_result(request)


def _expire(request: PendingRequest) -> None:
    """On the event loop, at the request's deadline: stop waiting and drop its queued items."""
    request.abandoned = True
    future = request.waiter
    if not future.done():
        future.set_exception(DeadlineExceededError("deadline"))
