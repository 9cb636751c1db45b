"""The bounded work queue of one model and how the next batch is chosen from it.

Requests are admitted whole or not at all (429 past the request or token bound), so memory stays bounded
under any overload. Their items (one per input) wait here until the batcher takes them. A batch is built
around the oldest waiting item, so nothing starves, and grown with the items nearest to it in length, so
that padding stays small; its padded cost (items x longest) never exceeds the token budget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.runtime.tokenization import TokenizedText
from service.errors import OverloadedError

#: Called on the batcher thread with the requests a batch finished (done or failed) that share it.
OnDone = Callable[[list["PendingRequest"]], None]


@dataclass(eq=False)
class PendingRequest:
    """One client request in flight: its items' rows are filled in as their batches finish.

    ``on_done`` is called once per batch for all the finished requests that share it (one hop to the
    event loop per batch, not one per request); ``waiter`` is whatever its caller waits on.
    """

    size: int
    deadline: float
    on_done: OnDone
    waiter: Any = None
    enqueued_at: float = field(default_factory=time.perf_counter)
    rows: np.ndarray | None = None
    remaining: int = 0
    error: BaseException | None = None
    abandoned: bool = False
    first_batch_at: float | None = None
    last_batch_end: float = 0.0

    def __post_init__(self) -> None:
        self.remaining = self.size

    @property
    def live(self) -> bool:
        """Whether the request still wants its results (not failed, cancelled or expired)."""
        return not self.abandoned and self.error is None and time.perf_counter() < self.deadline


@dataclass(eq=False)
class WorkItem:
    """One input of a request, waiting for a batch."""

    request: PendingRequest
    index: int
    tokens: TokenizedText
    seq: int = 0

    @property
    def length(self) -> int:
        """Tokens this item puts in a batch."""
        return self.tokens.tokens


@dataclass(frozen=True)
class QueueLimits:
    """Admission and batch bounds."""

    max_requests: int
    max_tokens: int
    batch_tokens: int
    batch_items: int
    #: Fraction of either admission bound from which the queue counts as saturated (readiness).
    saturation: float = 1.0
    #: A batch's longest input has at most this many times the tokens of its shortest.
    length_ratio: float = 2.0


class BatchQueue:
    """Thread-safe queue shared by the event loop (producer) and the batcher thread (consumer)."""

    def __init__(self, limits: QueueLimits) -> None:
        self.limits = limits
        self._cond = threading.Condition()
        self._items: list[WorkItem] = []  # FIFO (by seq)
        self._requests = 0
        self._tokens = 0
        self._seq = 0
        self._closed = False
        self._saturated_requests = max(1, int(limits.max_requests * limits.saturation))
        self._saturated_tokens = max(1, int(limits.max_tokens * limits.saturation))
        self._saturated_since: float | None = None

    @property
    def saturated_since(self) -> float | None:
        """``time.perf_counter()`` when the queue last became saturated; None while it is not."""
        return self._saturated_since

    def _note_pressure(self) -> None:
        # Under the lock, after every change of the counts: a clock read only when the state flips.
        full = self._requests >= self._saturated_requests or self._tokens >= self._saturated_tokens
        if full != (self._saturated_since is not None):
            self._saturated_since = time.perf_counter() if full else None

    @property
    def depth(self) -> tuple[int, int, int]:
        """(requests admitted and unfinished, items waiting, tokens waiting)."""
        with self._cond:
            return self._requests, len(self._items), self._tokens

    def admit(self) -> None:
        """Reserve a request slot or raise :class:`OverloadedError` (429) at once."""
        with self._cond:
            if self._requests >= self.limits.max_requests:
                raise OverloadedError("too many requests in flight", reason="queue_requests")
            self._requests += 1
            self._note_pressure()

    def release(self) -> None:
        """Free a request slot (every admitted request releases exactly once)."""
        with self._cond:
            self._requests -= 1
            self._note_pressure()

    def put(self, request: PendingRequest, items: list[TokenizedText]) -> None:
        """Queue a request's items, or raise :class:`OverloadedError` past the token bound."""
        tokens = sum(item.tokens for item in items)
        with self._cond:
            if self._tokens and self._tokens + tokens > self.limits.max_tokens:
                raise OverloadedError("too many tokens queued", reason="queue_tokens")
            for index, item in enumerate(items):
                self._seq += 1
                self._items.append(WorkItem(request, index, item, self._seq))
            self._tokens += tokens
            self._note_pressure()
            self._cond.notify()

    def take(self, max_wait_s: float) -> list[WorkItem] | None:
        """Block until items are waiting and return the next batch; None once closed."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            if self._closed and not self._items:
                return None
            if max_wait_s > 0 and self._fill_deadline_pending(max_wait_s):
                self._cond.wait_for(self._batch_full, timeout=max_wait_s)
            batch = self._select()
            taken = {id(item) for item in batch}
            self._items = [item for item in self._items if id(item) not in taken]
            self._tokens -= sum(item.length for item in batch)
            self._note_pressure()
            if self._items:  # a put wakes one worker: pass what is left on to the next idle one
                self._cond.notify()
            return batch

    def close(self) -> None:
        """Wake the batcher so it drains what is queued and stops."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def discard(self) -> int:
        """Drop every waiting item, marking its request abandoned; returns how many were dropped."""
        with self._cond:
            dropped, self._items, self._tokens = self._items, [], 0
            self._note_pressure()
        for item in dropped:
            item.request.abandoned = True
        return len(dropped)

    def _fill_deadline_pending(self, max_wait_s: float) -> bool:
        return time.perf_counter() - self._items[0].request.enqueued_at < max_wait_s

    def _batch_full(self) -> bool:
        waiting = sum(item.length for item in self._items)
        return len(self._items) >= self.limits.batch_items or waiting >= self.limits.batch_tokens

    def _dense(self, option: tuple[int, int, int], lengths: list[int], low: int) -> bool:
        # A short item padded far past its length costs more here than in a later batch of its peers
        # (on CPU, compute is proportional to padded tokens).
        _, side, longest = option
        shortest = lengths[low - 1] if side < 0 else lengths[low]
        return self.limits.length_ratio * shortest >= longest

    def _select(self) -> list[WorkItem]:
        """The oldest item plus the neighbours (by length) that add the least padding, in budget."""
        by_length = sorted(self._items, key=lambda item: (item.length, item.seq))
        lengths = [item.length for item in by_length]
        oldest = self._items[0]
        low = high = by_length.index(oldest)
        longest = lengths[low]
        budget, cap = self.limits.batch_tokens, self.limits.batch_items
        while high - low + 1 < cap:
            size = high - low + 1
            options = []  # (padding added, side, longest after)
            if low > 0:
                options.append((longest - lengths[low - 1], -1, longest))
            if high + 1 < len(lengths):
                options.append((size * (lengths[high + 1] - longest), 1, lengths[high + 1]))
            fitting = [
                o for o in sorted(options) if (size + 1) * o[2] <= budget and self._dense(o, lengths, low)
            ]
            if not fitting:
                break
            _, side, longest = fitting[0]
            if side < 0:
                low -= 1
            else:
                high += 1
        return by_length[low : high + 1]
