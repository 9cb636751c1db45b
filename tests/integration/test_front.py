"""bertserve's middleware runs in front of FastAPI's: the fast routes never enter FastAPI's stack."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from service.http.front import ServingApp
from service.http.middleware import BodyLimitMiddleware

pytestmark = pytest.mark.integration


async def test_fast_routes_skip_fastapis_stack_and_the_rest_go_through_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    embedded = await client.post("/embed", json={"inputs": "a fast route"}, headers={"x-request-id": "f-1"})
    assert embedded.status_code == 200
    assert embedded.headers["x-request-id"] == "f-1"  # the request observer ran
    # Starlette builds its middleware stack at the first request that reaches it.
    assert app.middleware_stack is None
    invalid = await client.post("/embed", json={"inputs": 3})
    assert invalid.status_code == 422  # errors of the fast routes are answered in front too
    assert app.middleware_stack is None
    health = await client.get("/health")
    assert health.status_code == 200
    assert "x-request-id" in health.headers
    assert app.middleware_stack is not None
    missing = await client.get("/no-such-route")
    assert missing.status_code == 404
    assert missing.json()["error_type"]  # FastAPI's handlers, in bertserve's error shape


async def test_the_front_is_fixed_once_it_serves(client: httpx.AsyncClient, app: FastAPI) -> None:
    assert isinstance(app, ServingApp)
    await client.get("/health")
    with pytest.raises(RuntimeError, match="before"):
        app.add_front_middleware(BodyLimitMiddleware, max_bytes=10)
