"""Build the configured cache tiers from the settings."""

from __future__ import annotations

from service.cache.memory import MemoryCache
from service.cache.redis_tier import RedisTier
from service.cache.tiers import ResultCache
from service.metrics import Metrics
from service.settings import Settings


def build_cache(settings: Settings, metrics: Metrics) -> ResultCache | None:
    """The result cache for ``settings.cache``, or None for ``none``."""
    if settings.cache == "none":
        return None
    memory = None
    if "memory" in settings.cache:
        memory = MemoryCache(settings.cache_max_bytes, settings.cache_max_entries, settings.cache_ttl_s)
        metrics.cache_bytes.set_function(lambda: float(memory.bytes_held))
        metrics.cache_entries.set_function(lambda: float(len(memory)))
    redis = None
    if "redis" in settings.cache:
        errors = metrics.cache_errors.labels("redis")
        redis = RedisTier(
            settings.redis_url,
            settings.redis_prefix,
            timeout_s=settings.redis_timeout_ms / 1000,
            ttl_s=settings.redis_ttl_s,
            backoff_s=settings.redis_backoff_s,
            on_error=errors.inc,
            on_roundtrip=metrics.redis_roundtrip.observe,
        )
    return ResultCache(memory, redis, settings.cache_dtype, metrics)
