"""The CPU's one arbiter: which batch runs alone on every thread, across models."""

from __future__ import annotations

import threading

import pytest

from service.engine.cores import CoreShare
from service.engine.queue import BatchQueue, QueueLimits

pytestmark = pytest.mark.unit


def _queue() -> BatchQueue:
    return BatchQueue(QueueLimits(max_requests=8, max_tokens=1000, batch_tokens=100, batch_items=8))


def _share(queues: int = 2) -> tuple[CoreShare, list[BatchQueue]]:
    share, watched = CoreShare(), [_queue() for _ in range(queues)]
    for queue in watched:
        share.watch(queue)
    return share, watched


def test_a_batch_runs_alone_only_when_nothing_else_is_running_or_in_any_engine() -> None:
    share, (mine, other) = _share()
    mine.admit()
    assert share.claim(1, all_threads=False) is True
    # A second batch, of either model, meets the first one.
    assert share.claim(1, all_threads=False) is False
    share.release(False)
    share.release(True)
    # Another model's request in its engine (tokenizing, or about to be queued): not alone.
    other.admit()
    assert share.claim(1, all_threads=False) is False
    share.release(False)
    other.release()
    # Two requests of this model in flight and only one in the batch: not alone either.
    mine.admit()
    assert share.claim(1, all_threads=False) is False
    assert share.claim(2, all_threads=False) is False  # the first is still running
    share.release(False)
    share.release(False)
    assert share.claim(2, all_threads=False) is True


def _next_batch_waits_for_release(share: CoreShare) -> bool:
    """Claim a worker's batch in a thread while a lone batch holds every thread: it must wait until that
    one is released (``release(True)``, done here); returns what its claim answered."""
    claimed = threading.Event()
    results: list[bool] = []

    def next_batch() -> None:
        results.append(share.claim(0, all_threads=True))
        claimed.set()

    thread = threading.Thread(target=next_batch)
    thread.start()
    assert not claimed.wait(0.2), "a batch started beside one that has every thread"
    share.release(True)
    assert claimed.wait(5)
    thread.join()
    return results[0]


def test_a_lone_batch_on_every_thread_holds_the_next_one_back_until_it_ends() -> None:
    share, _ = _share()
    assert share.claim(0, all_threads=True) is True
    # It had to wait, so the load is not low: it keeps its stream's share, and holds nobody back.
    assert _next_batch_waits_for_release(share) is False
    assert share.claim(0, all_threads=True) is False
    share.release(False)
    share.release(False)


def test_a_lone_batch_on_its_streams_share_holds_nobody_back() -> None:
    share, _ = _share()
    assert share.claim(0, all_threads=False) is True
    assert share.claim(0, all_threads=False) is False  # at once, no wait
    share.release(False)
    share.release(True)


def test_a_batch_on_the_loop_is_claimed_only_when_all_is_quiet_and_never_waits() -> None:
    share, (mine, other) = _share()
    mine.admit()
    other.admit()
    assert share.claim_for_loop(1) is False  # another model's request is in its engine
    other.release()
    assert share.claim(1, all_threads=False) is True  # a worker's batch is running
    assert share.claim_for_loop(1) is False
    share.release(True)
    assert share.quiet_for(1) is True
    assert share.claim_for_loop(1) is True
    assert share.claim_for_loop(1) is False  # one at a time


def test_a_batch_on_the_loop_holds_the_workers_batches_back_until_it_ends() -> None:
    share, _ = _share()
    assert share.claim_for_loop(0) is True
    assert _next_batch_waits_for_release(share) is False
    share.release(False)
