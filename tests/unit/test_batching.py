"""Batch planning by padded-token budget."""

from __future__ import annotations

import pytest

from service.engine.batching import plan_batches

pytestmark = pytest.mark.unit


def test_every_item_once_and_budget_respected() -> None:
    lengths = [5, 60, 12, 7, 33, 33, 8, 100, 2]
    plan = plan_batches(lengths, max_tokens=100, max_items=4)
    assert sorted(i for batch in plan for i in batch) == list(range(len(lengths)))
    for batch in plan:
        assert len(batch) <= 4
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 100


def test_batches_are_length_sorted() -> None:
    lengths = [30, 3, 20, 4, 10, 2]
    plan = plan_batches(lengths, max_tokens=30, max_items=10)
    flat = [lengths[i] for batch in plan for i in batch]
    assert flat == sorted(lengths)
    assert plan[0] == [5, 1, 3]  # 2, 3, 4 tokens: 3 x 4 = 12, adding 10 would cost 40


def test_oversize_item_gets_its_own_batch() -> None:
    assert plan_batches([500, 3], max_tokens=64, max_items=8) == [[1], [0]]
