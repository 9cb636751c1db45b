"""L1: in-process LRU bounded by bytes and by entries, with an optional TTL."""

from __future__ import annotations

from cachetools import Cache, LRUCache, TTLCache

#: Rough per-entry cost beyond the value itself (key string, dict slot, LRU links).
ENTRY_OVERHEAD_BYTES = 200


def _entry_size(value: bytes) -> int:
    return len(value) + ENTRY_OVERHEAD_BYTES


class MemoryCache:
    """LRU of ``key -> bytes``; used from the event loop only, so it needs no lock."""

    def __init__(self, max_bytes: int, max_entries: int, ttl_s: float = 0.0) -> None:
        self.max_entries = max_entries
        self._cache: Cache[str, bytes] = (
            TTLCache(maxsize=max_bytes, ttl=ttl_s, getsizeof=_entry_size)
            if ttl_s > 0
            else LRUCache(maxsize=max_bytes, getsizeof=_entry_size)
        )

    @property
    def bytes_held(self) -> int:
        """Bytes accounted for (values plus per-entry overhead)."""
        return int(self._cache.currsize)

    @property
    def max_bytes(self) -> int:
        """The byte bound."""
        return int(self._cache.maxsize)

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, key: str) -> bytes | None:
        """The value, refreshed as most recently used, or None."""
        return self._cache.get(key)

    def put(self, key: str, value: bytes) -> None:
        """Store ``value``, evicting least recently used entries past either bound."""
        if _entry_size(value) > self._cache.maxsize:
            return  # larger than the whole cache: cachetools would raise
        self._cache[key] = value
        while len(self._cache) > self.max_entries:
            self._cache.popitem()
