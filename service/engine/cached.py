"""Cache lookups and single-flight in front of an engine's model path.

Identical texts inside one request are computed once; identical texts in flight from concurrent requests
are computed once too: the first request computes them, the others wait for its rows. If that first
request fails or is cancelled, each waiter computes its texts itself, so no one inherits another's error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import numpy as np

from models.runtime.types import ModelInput
from service.cache.keys import CachedRow, RowScope
from service.cache.tiers import ResultCache
from service.engine.usage import Usage

Compute = Callable[[list[ModelInput]], Awaitable[tuple[np.ndarray, Usage]]]


class _LeaderFailedError(Exception):
    """The request computing a shared text did not deliver it."""


class CachedRows:
    """Rows for texts from the cache, from in-flight computations, or computed (and then stored)."""

    def __init__(
        self, cache: ResultCache, scope: RowScope, on_join: Callable[[int], None] | None = None
    ) -> None:
        self.cache = cache
        self.scope = scope
        self.on_join = on_join
        self._inflight: dict[str, asyncio.Future[CachedRow]] = {}

    async def rows(
        self, texts: list[ModelInput], direction: str, compute: Compute, mode: str = ""
    ) -> tuple[np.ndarray, Usage]:
        """Rows for ``texts`` in order; ``compute`` runs the model on the texts nobody has; ``mode``
        names a non-default long-input treatment (part of the key)."""
        keys = [self.scope.key(text, direction, mode) for text in texts]
        text_of = dict(zip(keys, texts, strict=True))
        found = await self.cache.get_many(list(text_of))
        waiting = {k: self._inflight[k] for k in text_of if k not in found and k in self._inflight}
        mine = [k for k in text_of if k not in found and k not in waiting]
        usage = Usage()
        if mine:
            usage = await self._lead(mine, text_of, found, compute)
        if waiting:
            if self.on_join is not None:
                self.on_join(len(waiting))
            retry = await self._follow(waiting, found)
            if retry:
                usage = usage.merged(await self._compute_into(retry, text_of, found, compute))
        cached_tokens = sum(found[key].tokens for key in keys) - usage.tokens
        return np.stack([found[key].row for key in keys]), replace(usage, cached_tokens=cached_tokens)

    async def refresh(
        self, texts: list[ModelInput], direction: str, compute: Compute, mode: str = ""
    ) -> tuple[np.ndarray, Usage]:
        """Compute ``texts`` without looking them up, then store the fresh rows."""
        rows, usage = await compute(texts)
        keys = [self.scope.key(text, direction, mode) for text in texts]
        entries = [CachedRow(row, tokens) for row, tokens in zip(rows, usage.item_tokens, strict=True)]
        self.cache.put_many(dict(zip(keys, entries, strict=True)))
        return rows, usage

    @staticmethod
    async def _compute_into(
        keys: list[str], text_of: dict[str, ModelInput], found: dict[str, CachedRow], compute: Compute
    ) -> Usage:
        rows, usage = await compute([text_of[key] for key in keys])
        for key, row, tokens in zip(keys, rows, usage.item_tokens, strict=True):
            found[key] = CachedRow(row, tokens)
        return usage

    async def _lead(
        self, keys: list[str], text_of: dict[str, ModelInput], found: dict[str, CachedRow], compute: Compute
    ) -> Usage:
        loop = asyncio.get_running_loop()
        futures: dict[str, asyncio.Future[CachedRow]] = {key: loop.create_future() for key in keys}
        self._inflight.update(futures)
        try:
            usage = await self._compute_into(keys, text_of, found, compute)
        except BaseException:
            for future in futures.values():
                future.set_exception(_LeaderFailedError())
                future.exception()  # retrieved: no "never retrieved" warning if nobody waits
            raise
        finally:
            for key in keys:
                self._inflight.pop(key, None)
        for key, future in futures.items():
            future.set_result(found[key])
        self.cache.put_many({key: found[key] for key in keys})
        return usage

    @staticmethod
    async def _follow(
        waiting: dict[str, asyncio.Future[CachedRow]], found: dict[str, CachedRow]
    ) -> list[str]:
        retry = []
        for key, future in waiting.items():
            try:
                found[key] = await asyncio.shield(future)
            except _LeaderFailedError:
                retry.append(key)
        return retry
