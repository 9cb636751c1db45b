"""API keys (Bearer tokens, compared in constant time) and an optional per-key rate limit.

Pure ASGI, before the body is read: a request without a valid key costs no parsing. Keys never appear
in logs or responses; the access log names a key only by its position in the configuration.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from service.http.middleware import send_error


class TokenBuckets:
    """One token bucket per key: ``rate`` requests per second on average, bursts up to ``burst``."""

    def __init__(self, keys: int, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        now = time.monotonic()
        self._tokens = [float(burst)] * keys
        self._stamp = [now] * keys

    def take(self, key: int) -> float:
        """0 if the request may go, else the seconds until a token is free."""
        now = time.monotonic()
        tokens = min(self.burst, self._tokens[key] + (now - self._stamp[key]) * self.rate)
        self._stamp[key] = now
        if tokens >= 1:
            self._tokens[key] = tokens - 1
            return 0.0
        self._tokens[key] = tokens
        return (1 - tokens) / self.rate


class ApiKeyMiddleware:
    """401 without a valid ``Authorization: Bearer`` key (except on open paths); 429 past the rate."""

    def __init__(
        self, app: ASGIApp, keys: list[bytes], open_paths: list[str], buckets: TokenBuckets | None
    ) -> None:
        self.app = app
        # Digests of equal length: compare_digest then leaks neither content nor key length.
        self.keys = [hashlib.sha256(key).digest() for key in keys]
        self.open_paths = frozenset(open_paths)
        self.buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        key = self._match(_bearer(scope))
        if key is None:
            await send_error(
                scope,
                send,
                401,
                "unauthorized",
                "missing or invalid API key",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        scope.setdefault("state", {})["api_key_index"] = key
        wait = self.buckets.take(key) if self.buckets is not None else 0.0
        if wait > 0:
            retry = str(max(1, math.ceil(wait))).encode()
            await send_error(
                scope,
                send,
                429,
                "rate_limited",
                "rate limit of this API key exceeded",
                [(b"retry-after", retry)],
            )
            return
        await self.app(scope, receive, send)

    def _match(self, token: bytes | None) -> int | None:
        if token is None:
            return None
        digest = hashlib.sha256(token).digest()
        found = None
        for index, key in enumerate(self.keys):  # every key is compared: no early exit to time
            if hmac.compare_digest(digest, key) and found is None:
                found = index
        return found


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" and token.strip() else None
    return None
