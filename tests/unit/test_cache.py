"""Cache keys, value encoding and the in-process LRU's bounds."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from service.cache.keys import CachedRow, RowScope, decode_row, encode_row
from service.cache.memory import ENTRY_OVERHEAD_BYTES, MemoryCache

pytestmark = pytest.mark.unit

SCOPE = RowScope(
    fingerprint="f" * 16, runtime="onnx", dtype="float32", task="embed", pooling="mean", max_tokens=256
)


def test_every_scope_field_and_direction_change_the_key() -> None:
    base = SCOPE.key("text", "right")
    changes = [
        replace(SCOPE, fingerprint="0" * 16),
        replace(SCOPE, runtime="torch"),
        replace(SCOPE, dtype="float16"),
        replace(SCOPE, task="classify"),
        replace(SCOPE, pooling="cls"),
        replace(SCOPE, max_tokens=128),
    ]
    keys = {scope.key("text", "right") for scope in changes} | {SCOPE.key("text", "left"), base}
    assert len(keys) == len(changes) + 2
    assert SCOPE.key("text", "right") == base
    assert SCOPE.key("text ", "right") != base


def test_fields_cannot_run_into_each_other() -> None:
    a = replace(SCOPE, runtime="ab", dtype="c")
    b = replace(SCOPE, runtime="a", dtype="bc")
    assert a.key("x", "right") != b.key("x", "right")


def test_values_round_trip() -> None:
    row = np.linspace(-1, 1, 384, dtype=np.float32)
    exact = decode_row(encode_row(CachedRow(row, 17), "float32"), "float32")
    np.testing.assert_array_equal(exact.row, row)
    assert exact.tokens == 17
    half = encode_row(CachedRow(row, 17), "float16")
    assert len(half) == 4 + 2 * 384
    np.testing.assert_allclose(decode_row(half, "float16").row, row, atol=1e-3)


def test_byte_bound_holds_under_unique_texts() -> None:
    value = bytes(4 + 384 * 4)
    cache = MemoryCache(max_bytes=100 * (len(value) + ENTRY_OVERHEAD_BYTES), max_entries=10_000)
    for i in range(5_000):
        cache.put(SCOPE.key(f"unique {i}", "right"), value)
        assert cache.bytes_held <= cache.max_bytes
    assert len(cache) == 100
    assert cache.get(SCOPE.key("unique 4999", "right")) == value
    assert cache.get(SCOPE.key("unique 0", "right")) is None


def test_entry_bound_and_lru_order() -> None:
    cache = MemoryCache(max_bytes=10**9, max_entries=3)
    for key in "abc":
        cache.put(key, b"v")
    cache.get("a")  # a becomes most recently used
    cache.put("d", b"v")
    assert cache.get("b") is None
    assert [cache.get(k) for k in "acd"] == [b"v"] * 3


def test_ttl_expires_entries() -> None:
    cache = MemoryCache(max_bytes=10**6, max_entries=10, ttl_s=0.05)
    cache.put("k", b"v")
    assert cache.get("k") == b"v"
    time.sleep(0.08)
    assert cache.get("k") is None


def test_value_larger_than_the_cache_is_not_stored() -> None:
    cache = MemoryCache(max_bytes=100, max_entries=10)
    cache.put("k", bytes(1000))
    assert cache.get("k") is None
