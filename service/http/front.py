"""The application object: FastAPI behind bertserve's own pure-ASGI middleware.

FastAPI wraps every request in middleware of its own, around any middleware added with
``add_middleware``: Starlette's server-error middleware (a wrapped ``send``), FastAPI's exception
telemetry and its body-limit wrapper, each one more coroutine per request. bertserve's middleware (the
request observer, CORS, API keys, the body limit and the fast inference routes) is pure ASGI and answers
its own errors, so it runs in front of all that: FastAPI's stack only sees the requests the fast routes
pass on (``/info``, ``/metrics``, ``/docs``, rerank, ...), with its error handling intact for those.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send


class ServingApp(FastAPI):
    """A FastAPI application whose HTTP requests pass through :meth:`add_front_middleware` layers
    first (lifespan events go straight to FastAPI)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._layers: list[tuple[Any, dict[str, Any]]] = []
        self._front: ASGIApp | None = None

    def add_front_middleware(self, middleware: Any, **options: Any) -> None:
        """Wrap the front in ``middleware(app, **options)``: the last one added runs first, as with
        ``add_middleware``."""
        if self._front is not None:
            raise RuntimeError("the front is built at the first request: add middleware before it")
        self._layers.append((middleware, options))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if self._front is None:
            self._front = self._build_front()
        scope["app"] = self  # as Starlette sets it: the error handlers read the app's state
        await self._front(scope, receive, send)

    def _build_front(self) -> ASGIApp:
        app: ASGIApp = self._fastapi
        for middleware, options in self._layers:
            app = middleware(app, **options)
        return app

    async def _fastapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)
