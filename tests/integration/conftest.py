"""ASGI client fixtures: the real app with its lifespan, on tiny models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.settings import Settings

AppFactory = Callable[..., FastAPI]


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory for the session, so each tiny model is exported to ONNX once."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture
def make_settings(tiny_embedder: Path, tiny_classifier: Path, shared_home: Path) -> Callable[..., Settings]:
    """Settings serving the tiny embedder ("tiny-embed") and classifier ("tiny-classify")."""

    def make(runtime: str = "auto", **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "models": [
                {"name": "tiny-embed", "source": str(tiny_embedder), "runtime": runtime},
                {"name": "tiny-classify", "source": str(tiny_classifier), "runtime": runtime},
            ],
            "home": shared_home,
            "threads": 1,
            # The same answers on every CPU: dtype auto would serve bfloat16 only where the CPU has it.
            # The bfloat16 path has its own tests (tests/integration/test_openvino.py).
            "cpu_bfloat16": "off",
        }
        values.update(overrides)
        return Settings(**values)

    return make


async def wait_ready(app: FastAPI, limit_s: float = 30.0) -> None:
    """Poll the registry until every model is loaded."""
    registry = app.state.registry
    for _ in range(int(limit_s / 0.02)):
        if registry.ready:
            return
        if registry.failure:
            raise AssertionError(f"model loading failed: {registry.failure}")
        await asyncio.sleep(0.02)
    raise AssertionError("models did not load in time")


async def load_failure(app: FastAPI, limit_s: float = 10.0) -> str:
    """Poll the registry until model loading has failed; returns why (asserts that it did fail)."""
    registry = app.state.registry
    for _ in range(int(limit_s / 0.02)):
        if registry.failure:
            return str(registry.failure)
        await asyncio.sleep(0.02)
    raise AssertionError("model loading did not fail")


async def started_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on ``app`` with its lifespan entered and models loaded."""
    async with app.router.lifespan_context(app):
        await wait_ready(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
async def app(make_settings: Callable[..., Settings]) -> FastAPI:
    """The app on the tiny models (lifespan not entered)."""
    return create_app(make_settings())


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the started app."""
    async for client in started_client(app):
        yield client
