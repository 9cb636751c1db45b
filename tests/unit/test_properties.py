"""Property tests: request limits, batch selection, split and reassembly, cache keys."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.runtime.tokenization import TokenizedText
from service.cache.keys import RowScope
from service.engine.queue import BatchQueue, PendingRequest, QueueLimits
from service.errors import EmptyInputError, PayloadTooLargeError
from service.http.schemas import InputLimits, check_inputs

pytestmark = pytest.mark.unit

LIMITS = InputLimits(max_inputs=8, max_chars=40, max_total_chars=150)


@given(st.one_of(st.text(max_size=60), st.lists(st.text(max_size=60), max_size=12)))
def test_inputs_are_accepted_exactly_when_within_limits(inputs: str | list[str]) -> None:
    texts = [inputs] if isinstance(inputs, str) else inputs
    valid = 0 < len(texts) <= 8 and all(0 < len(t) <= 40 for t in texts) and sum(map(len, texts)) <= 150
    try:
        assert check_inputs(inputs, LIMITS) == texts
        assert valid
    except (EmptyInputError, PayloadTooLargeError):
        assert not valid


@settings(max_examples=200, deadline=None)
@given(
    requests=st.lists(st.lists(st.integers(1, 120), min_size=1, max_size=10), min_size=1, max_size=12),
    budget=st.integers(16, 600),
    cap=st.integers(1, 16),
)
def test_batches_cover_every_item_once_within_budget_in_order(
    requests: list[list[int]], budget: int, cap: int
) -> None:
    queue = BatchQueue(QueueLimits(max_requests=100, max_tokens=10**6, batch_tokens=budget, batch_items=cap))
    pending = []
    for lengths in requests:
        request = PendingRequest(size=len(lengths), deadline=time.perf_counter() + 60, on_done=lambda r: None)
        queue.put(request, [TokenizedText([1] * n, [0] * n, n) for n in lengths])
        pending.append(request)
    seen: dict[int, list[int]] = {}
    oldest_seq = 0
    while queue.depth[1]:
        batch = queue.take(0)
        assert batch is not None
        assert len(batch) <= cap
        assert len(batch) == 1 or len(batch) * max(item.length for item in batch) <= budget
        assert min(item.seq for item in batch) > oldest_seq  # the oldest waiting item is always taken
        oldest_seq = min(item.seq for item in batch)
        for item in batch:
            seen.setdefault(id(item.request), []).append(item.index)
    for request, lengths in zip(pending, requests, strict=True):
        assert sorted(seen[id(request)]) == list(range(len(lengths)))


SCOPES = st.builds(
    RowScope,
    fingerprint=st.text(min_size=1, max_size=16),
    runtime=st.sampled_from(["onnx", "torch"]),
    dtype=st.sampled_from(["float32", "float16", "bfloat16"]),
    task=st.sampled_from(["embed", "classify"]),
    pooling=st.sampled_from(["mean", "cls"]),
    max_tokens=st.integers(2, 8192),
)


@given(
    SCOPES,
    SCOPES,
    st.text(max_size=50),
    st.text(max_size=50),
    st.sampled_from(["right", "left"]),
    st.sampled_from(["right", "left"]),
)
def test_cache_keys_collide_only_for_identical_inputs(
    a: RowScope, b: RowScope, text_a: str, text_b: str, dir_a: str, dir_b: str
) -> None:
    same = (a, text_a, dir_a) == (b, text_b, dir_b)
    assert (a.key(text_a, dir_a) == b.key(text_b, dir_b)) is same


@given(SCOPES, st.text(max_size=30))
def test_one_changed_field_changes_the_key(scope: RowScope, text: str) -> None:
    changed = replace(scope, max_tokens=scope.max_tokens + 1)
    assert scope.key(text, "right") != changed.key(text, "right")


#: Every field as free text, separators and surrogates included: the key must still tell them apart.
ANY_OPTIONS = st.tuples(
    st.text(max_size=8),
    st.text(max_size=8),
    st.text(max_size=8),
    st.text(max_size=8),
    st.text(max_size=8),
    st.integers(0, 10**6),
    st.text(max_size=8),
    st.text(st.characters(codec=None), max_size=12),
)


@settings(max_examples=300)
@given(ANY_OPTIONS, ANY_OPTIONS)
def test_no_two_option_sets_share_a_cache_key(
    a: tuple[str, str, str, str, str, int, str, str], b: tuple[str, str, str, str, str, int, str, str]
) -> None:
    key_a = RowScope(*a[:6]).key(a[7], a[6])
    key_b = RowScope(*b[:6]).key(b[7], b[6])
    assert (key_a == key_b) is (a == b)


@given(ANY_OPTIONS)
def test_a_character_moved_between_fields_changes_the_key(
    options: tuple[str, str, str, str, str, int, str, str],
) -> None:
    # "ab" + "c" and "a" + "bc" must differ: fields are length-prefixed, not joined.
    text_fields = [i for i in range(8) if i != 5 and options[i]]
    if len(text_fields) < 2:
        return
    first, second = text_fields[0], text_fields[1]
    moved = list(options)
    moved[first], moved[second] = options[first][:-1], options[first][-1] + options[second]
    scope, other = RowScope(*options[:6]), RowScope(*moved[:6])
    assert scope.key(options[7], options[6]) != other.key(str(moved[7]), str(moved[6]))
