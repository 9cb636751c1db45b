"""/ready follows what a balancer needs to know: draining, a wedged model worker, a saturated queue,
each turning 503 while it lasts and 200 again once it is over; requests are served meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.engine.model_engine import ModelEngine
from service.settings import Settings
from tests.integration.conftest import started_client
from tests.integration.gated import GatedBackend

pytestmark = pytest.mark.integration


def _engine(app: FastAPI) -> ModelEngine:
    return app.state.registry.get("tiny-embed", "embed")


async def _ready_state(client: httpx.AsyncClient) -> tuple[int, str]:
    response = await client.get("/ready")
    body = response.json()
    return response.status_code, body.get("error_type", body.get("status", ""))


async def _until_state(client: httpx.AsyncClient, expected: tuple[int, str], limit_s: float = 3.0) -> None:
    state = await _ready_state(client)
    for _ in range(int(limit_s / 0.02)):
        if state == expected:
            return
        await asyncio.sleep(0.02)
        state = await _ready_state(client)
    raise AssertionError(f"/ready stayed {state}, expected {expected}")


def _ready_metric(app: FastAPI) -> float | None:
    value: float | None = app.state.metrics.registry.get_sample_value("bertserve_ready")
    return value


async def test_draining_answers_503_and_keeps_serving(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(cache="none"))
    async for client in started_client(app):
        assert await _ready_state(client) == (200, "ready")
        assert _ready_metric(app) == 1
        app.state.registry.start_draining()
        assert await _ready_state(client) == (503, "draining")
        assert _ready_metric(app) == 0
        response = await client.post("/embed", json={"inputs": ["still served while draining"]})
        assert response.status_code == 200


async def test_wedged_batch_turns_unready_until_it_finishes(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(cache="none", ready_max_batch_s=0.2))
    async for client in started_client(app):
        gated = GatedBackend(_engine(app))
        gated.gate.clear()
        request = asyncio.ensure_future(client.post("/embed", json={"inputs": ["stuck in the model"]}))
        assert await asyncio.to_thread(gated.entered.wait, 5)
        await _until_state(client, (503, "wedged"))
        assert _ready_metric(app) == 0
        gated.gate.set()
        assert (await request).status_code == 200
        await _until_state(client, (200, "ready"))


async def test_dead_batcher_thread_is_wedged(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(cache="none"))
    async for client in started_client(app):
        _engine(app).batcher.stop(timeout=5)
        assert await _ready_state(client) == (503, "wedged")


async def test_saturated_queue_turns_unready_until_it_drains(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        cache="none", max_concurrent_requests=4, ready_queue_fraction=0.5, ready_saturated_s=0.3
    )
    app = create_app(settings)
    async for client in started_client(app):
        gated = GatedBackend(_engine(app))
        gated.gate.clear()
        first = asyncio.ensure_future(
            client.post("/embed", json={"inputs": ["one request is not saturation"]})
        )
        assert await asyncio.to_thread(gated.entered.wait, 5)
        await asyncio.sleep(0.5)
        assert await _ready_state(client) == (200, "ready"), "1 of 4 requests is under the 0.5 threshold"
        second = asyncio.ensure_future(client.post("/embed", json={"inputs": ["two of four: saturated"]}))
        await _until_state(client, (503, "saturated"))
        gated.gate.set()
        assert [(await r).status_code for r in (first, second)] == [200, 200]
        await _until_state(client, (200, "ready"))


async def test_saturation_check_can_be_switched_off(make_settings: Callable[..., Settings]) -> None:
    app = create_app(
        make_settings(cache="none", max_concurrent_requests=1, ready_saturated_s=0, ready_max_batch_s=0)
    )
    async for client in started_client(app):
        gated = GatedBackend(_engine(app))
        gated.gate.clear()
        request = asyncio.ensure_future(client.post("/embed", json={"inputs": ["held, queue full"]}))
        assert await asyncio.to_thread(gated.entered.wait, 5)
        await asyncio.sleep(0.3)
        assert await _ready_state(client) == (200, "ready")
        gated.gate.set()
        assert (await request).status_code == 200
