"""Pure ASGI middleware: body size limit (before JSON parsing), request ids, metrics and access log."""

from __future__ import annotations

import json
import random
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.errors import error_body
from service.logs import AccessLog
from service.metrics import Metrics

#: Client-chosen request ids are kept when short and plain (they end up in logs and headers).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class BodyLimitMiddleware:
    """Answer 413 for bodies over ``max_bytes``, by Content-Length or by counting streamed chunks."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, send)
            return
        chunks: list[Message] = []
        received = 0
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                await self._reject(scope, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        await send_error(
            scope, send, 413, "payload_too_large", f"request body larger than {self.max_bytes} bytes"
        )


async def send_error(
    scope: Scope,
    send: Send,
    status: int,
    error_type: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer from middleware, in the error shape of the route (OpenAI's under /v1/)."""
    payload = json.dumps(error_body(scope["path"], status, error_type, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestObserverMiddleware:
    """Per request: an id (taken from X-Request-ID or made) returned in the response, the request
    metrics by route template, model and status, and one JSON access-log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: AccessLog) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            model = state.get("model", "")
            count, duration = self.metrics.served(route, model, status)
            count.inc()
            duration.observe(seconds)
            fields = {
                "request_id": request_id,
                "method": scope["method"],
                "route": route,
                "model": model,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                **state.get("usage_fields", {}),
            }
            if "api_key_index" in state:  # which configured key (its position), never the key itself
                fields["api_key"] = state["api_key_index"]
            self.access_log.write(fields)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    # 128 random bits as 32 hex digits, like uuid4().hex at a fifth of its cost (ids are not secrets).
    return f"{random.getrandbits(128):032x}"
