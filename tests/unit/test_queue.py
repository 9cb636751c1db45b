"""Batch selection and admission of the engine's queue."""

from __future__ import annotations

import time

import pytest

from models.runtime.tokenization import TokenizedText
from service.engine.queue import BatchQueue, PendingRequest, QueueLimits
from service.errors import OverloadedError

pytestmark = pytest.mark.unit


def _queue(batch_tokens: int = 100, batch_items: int = 8, max_tokens: int = 10_000) -> BatchQueue:
    return BatchQueue(
        QueueLimits(max_requests=4, max_tokens=max_tokens, batch_tokens=batch_tokens, batch_items=batch_items)
    )


def _put(queue: BatchQueue, lengths: list[int]) -> PendingRequest:
    request = PendingRequest(size=len(lengths), deadline=time.perf_counter() + 60, on_done=lambda r: None)
    queue.put(request, [TokenizedText(ids=[1] * n, type_ids=[0] * n, original_tokens=n) for n in lengths])
    return request


def _drain(queue: BatchQueue) -> list[list[int]]:
    batches = []
    while queue.depth[1]:
        batch = queue.take(0)
        assert batch is not None
        batches.append([item.length for item in batch])
    return batches


def test_every_item_once_within_budget() -> None:
    queue = _queue(batch_tokens=100, batch_items=4)
    lengths = [5, 60, 12, 7, 33, 33, 8, 100, 2, 150]
    _put(queue, lengths)
    batches = _drain(queue)
    assert sorted(n for batch in batches for n in batch) == sorted(lengths)
    for batch in batches:
        assert len(batch) <= 4
        assert len(batch) == 1 or len(batch) * max(batch) <= 100
    assert queue.depth == (0, 0, 0)


def test_batch_is_built_around_the_oldest_item_with_similar_lengths() -> None:
    queue = _queue(batch_tokens=124, batch_items=8)
    _put(queue, [30])
    _put(queue, [3, 4, 29, 31, 80, 28, 2])
    first = queue.take(0)
    assert first is not None
    assert sorted(item.length for item in first) == [28, 29, 30, 31]


def test_rows_are_not_padded_past_twice_their_length() -> None:
    queue = _queue(batch_tokens=1000, batch_items=8)
    _put(queue, [30, 14, 16, 60, 61])
    first = queue.take(0)
    assert first is not None
    assert sorted(item.length for item in first) == [16, 30]


def test_length_ratio_bounds_padding() -> None:
    queue = BatchQueue(
        QueueLimits(max_requests=4, max_tokens=10_000, batch_tokens=1000, batch_items=8, length_ratio=1.25)
    )
    _put(queue, [16, 14, 20, 21, 30])
    assert _drain(queue) == [[14, 16], [20, 21], [30]]


def test_long_items_are_not_starved() -> None:
    queue = _queue(batch_tokens=64, batch_items=8)
    _put(queue, [60])
    for _ in range(3):
        _put(queue, [2, 2, 2, 2])
    first = queue.take(0)
    assert first is not None
    assert [item.length for item in first] == [60]


def test_request_and_token_bounds() -> None:
    queue = _queue(max_tokens=50)
    for _ in range(4):
        queue.admit()
    with pytest.raises(OverloadedError) as caught:
        queue.admit()
    assert caught.value.reason == "queue_requests"
    queue.release()
    queue.admit()
    _put(queue, [30])
    with pytest.raises(OverloadedError, match="tokens"):
        _put(queue, [30])
    assert queue.depth == (4, 1, 30)


def test_one_oversize_request_is_still_admitted_into_an_empty_queue() -> None:
    queue = _queue(max_tokens=50)
    _put(queue, [40, 40])
    assert queue.depth[2] == 80


def test_close_returns_none_once_drained() -> None:
    queue = _queue()
    _put(queue, [3])
    queue.close()
    assert queue.take(0) is not None
    assert queue.take(0) is None


def test_discard_drops_waiting_items_and_abandons_their_requests() -> None:
    queue = _queue()
    first, second = _put(queue, [3, 4]), _put(queue, [5])
    assert queue.discard() == 3
    assert queue.depth[1:] == (0, 0)
    assert not first.live
    assert not second.live
    queue.close()
    assert queue.take(0) is None
