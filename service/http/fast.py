"""The inference routes without FastAPI's per-request machinery.

FastAPI costs about half of a cache hit's CPU on its own (measured in benchmarks/RESULTS.md): route
matching over every route, dependency resolution, the body parsed by ``json.loads`` then validated, an
exit stack and the exception middleware per request. The hot routes (``/embed``, ``/classify``,
``/predict``, ``/v1/embeddings``) are served here instead, by the same handler functions: the body is
parsed and validated in one step by pydantic-core (``model_validate_json``, strict, the same schema), and
errors go through the same handlers and status table (:mod:`service.http.errors`). FastAPI keeps these
routes registered, so the OpenAPI schema and ``/docs`` are unchanged; every other route goes to FastAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ClientDisconnectedError
from service.http.deps import Serving
from service.http.errors import exception_response

Handler = Callable[[Any, Request, Serving], Awaitable[Response]]


@dataclass(frozen=True)
class FastRoute:
    """A POST route served here: its body schema and its handler ``(body, request, serving)``."""

    schema: type[BaseModel]
    handler: Handler


@dataclass(frozen=True)
class _Bound:
    route: APIRoute  # FastAPI's own route: the request metrics and logs name its path template
    fast: FastRoute


class FastRoutesMiddleware:
    """Serve the :class:`FastRoute` paths directly; pass everything else to the app."""

    def __init__(
        self, app: ASGIApp, routers: list[APIRouter], serving: Serving, routes: dict[str, FastRoute]
    ) -> None:
        self.app = app
        self.serving = serving
        registered = {
            route.path: route
            for router in routers
            for route in router.routes
            if isinstance(route, APIRoute) and "POST" in (route.methods or ())
        }
        self.routes = {path: _Bound(registered[path], fast) for path, fast in routes.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        bound = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if bound is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = bound.route
        request = Request(scope, receive, send)
        try:
            body = _parse(bound.fast.schema, scope, await _read_body(receive))
            response = await bound.fast.handler(body, request, self.serving)
        except Exception as exc:  # every error answers in the route's shape, as FastAPI's handlers do
            response = await exception_response(request, exc)
        await response(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    """The request body, as ``Request.body`` reads it, without its stream generator (~3x the cost); a
    client gone before the end of its body is a 499, not an unexpected error (a 500)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError("client disconnected before its body was read")  # 499
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _parse(schema: type[BaseModel], scope: Scope, body: bytes) -> BaseModel:
    """Validate a JSON body; errors are FastAPI's :class:`RequestValidationError` (a 422)."""
    if not _is_json(scope):  # as FastAPI (strict content type): no JSON without a JSON content type
        raise RequestValidationError(
            [{"type": "model_attributes_type", "loc": ("body",), "msg": "expected an application/json body"}]
        )
    try:
        return schema.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        for error in errors:
            error["loc"] = ("body", *error["loc"])
        raise RequestValidationError(errors) from None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.partition(b";")[0].strip().lower()
            return media == b"application/json" or (
                media.startswith(b"application/") and media.endswith(b"+json")
            )
    return False
