"""L2: Redis, shared by replicas. Never fails a request: errors open a circuit breaker instead.

Reads are one pipelined MGET per request, writes one pipeline of SET EX. Every call has a short
timeout; on an error or timeout the tier is skipped for ``backoff_s`` (the breaker is open), then the
next call tries again, so the service resumes using Redis by itself when it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import redis.asyncio as redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class RedisTier:
    """Async Redis cache tier with a circuit breaker."""

    def __init__(
        self,
        url: str,
        prefix: str,
        timeout_s: float,
        ttl_s: int,
        backoff_s: float,
        on_error: Callable[[], None] | None = None,
        on_roundtrip: Callable[[float], None] | None = None,
    ) -> None:
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._on_error = on_error
        self._on_roundtrip = on_roundtrip
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=0
        )
        self._open_until = 0.0

    @property
    def available(self) -> bool:
        """False while the breaker is open."""
        return time.monotonic() >= self._open_until

    async def ping(self) -> bool:
        """Check the connection once (start-up); logs clearly when Redis is down."""
        try:
            await asyncio.wait_for(self._client.ping(), self.timeout_s * 4)
        except (RedisError, OSError, TimeoutError) as exc:
            self._trip(exc)
            return False
        return True

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """Values for ``keys`` (None for misses, and for all of them while Redis is unavailable)."""
        if not keys or not self.available:
            return [None] * len(keys)
        started = time.perf_counter()
        try:
            values = await asyncio.wait_for(
                self._client.mget([self.prefix + key for key in keys]), self.timeout_s
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._trip(exc)
            return [None] * len(keys)
        self._roundtrip(started)
        return [value if isinstance(value, bytes) else None for value in values]

    async def set_many(self, items: dict[str, bytes]) -> None:
        """Store ``items`` with the TTL; failures are counted and swallowed."""
        if not items or not self.available:
            return
        started = time.perf_counter()
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(self.prefix + key, value, ex=self.ttl_s or None)
                await asyncio.wait_for(pipe.execute(), self.timeout_s)
        except (RedisError, OSError, TimeoutError) as exc:
            self._trip(exc)
            return
        self._roundtrip(started)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def _roundtrip(self, started: float) -> None:
        if self._on_roundtrip is not None:
            self._on_roundtrip(time.perf_counter() - started)

    def _trip(self, exc: BaseException) -> None:
        if self._on_error is not None:
            self._on_error()
        if self.available:
            logger.warning(
                "redis cache unavailable (%s); computing without it for %.1f s, then retrying",
                type(exc).__name__,
                self.backoff_s,
            )
        self._open_until = time.monotonic() + self.backoff_s
