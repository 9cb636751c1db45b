"""The two-tier result cache: L1 in-process LRU, then L2 Redis, with metrics per tier."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from service.cache.keys import CachedRow, decode_row, encode_row
from service.cache.memory import MemoryCache
from service.cache.redis_tier import RedisTier
from service.metrics import Metrics

logger = logging.getLogger(__name__)

#: Write-behind tasks to Redis kept at most; past this, writes are dropped (the cache is best effort).
_MAX_PENDING_WRITES = 256


class ResultCache:
    """``key -> row`` lookups through L1 then L2; L2 hits are promoted to L1."""

    def __init__(
        self, memory: MemoryCache | None, redis: RedisTier | None, dtype: str, metrics: Metrics | None
    ) -> None:
        self.memory = memory
        self.redis = redis
        self.dtype = dtype
        self._metrics = metrics
        self._writes: set[asyncio.Task[None]] = set()
        self._counters: dict[str, tuple[Any, Any]] = {}

    async def get_many(self, keys: list[str]) -> dict[str, CachedRow]:
        """Rows found for ``keys`` (absent keys are misses in every tier)."""
        found: dict[str, CachedRow] = {}
        missing = keys
        if self.memory is not None:
            missing = []
            for key in keys:
                value = self.memory.get(key)
                if value is None:
                    missing.append(key)
                else:
                    found[key] = decode_row(value, self.dtype)
            self._count("memory", len(keys) - len(missing), len(missing))
        if self.redis is not None and missing:
            values = await self.redis.get_many(missing)
            hits = 0
            for key, value in zip(missing, values, strict=True):
                if value is not None:
                    hits += 1
                    found[key] = decode_row(value, self.dtype)
                    if self.memory is not None:
                        self.memory.put(key, value)
            self._count("redis", hits, len(missing) - hits)
        return found

    def put_many(self, rows: dict[str, CachedRow]) -> None:
        """Store ``rows`` in L1 now and in L2 in the background (never delaying the answer)."""
        encoded = {key: encode_row(row, self.dtype) for key, row in rows.items()}
        if self.memory is not None:
            for key, value in encoded.items():
                self.memory.put(key, value)
        if self.redis is not None and self.redis.available and len(self._writes) < _MAX_PENDING_WRITES:
            task = asyncio.create_task(self.redis.set_many(encoded))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def close(self) -> None:
        """Finish pending writes and close Redis."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self.redis is not None:
            await self.redis.close()

    def _count(self, tier: str, hits: int, misses: int) -> None:
        if self._metrics is not None:
            # Children looked up once per tier: ``labels()`` costs a lock and a key per call.
            counters = self._counters.get(tier)
            if counters is None:
                counters = (self._metrics.cache_hits.labels(tier), self._metrics.cache_misses.labels(tier))
                self._counters[tier] = counters
            if hits:
                counters[0].inc(hits)
            if misses:
                counters[1].inc(misses)
