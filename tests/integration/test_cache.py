"""The result cache through the HTTP API: exact hits, option safety, single-flight, bypass, Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.engine.model_engine import ModelEngine
from service.settings import Settings
from tests.integration.conftest import started_client
from tests.integration.gated import GatedBackend
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

TEXTS = ["the cache keeps this", "and this one too", "a third, longer sentence for good measure"]


def _engine(app: FastAPI, name: str = "tiny-embed", task: str = "embed") -> ModelEngine:
    return app.state.registry.get(name, task)


def _texts_seen(gated: GatedBackend) -> int:
    return sum(len(batch) for batch in gated.batches)


async def _fresh(make_settings: Callable[..., Settings], route: str, payload: dict[str, object]) -> object:
    async for client in started_client(create_app(make_settings(cache="none"))):
        return (await client.post(route, json=payload)).json()
    raise AssertionError("unreachable")


async def test_hits_equal_fresh_results_and_skip_the_model(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(cache="memory"))
    async for client in started_client(app):
        gated = GatedBackend(_engine(app))
        first = (await client.post("/embed", json={"inputs": TEXTS})).json()
        second = await client.post("/embed", json={"inputs": TEXTS})
        assert second.json() == first
        assert second.headers["x-compute-tokens"] == "0"
        assert _texts_seen(gated) == len(TEXTS)
        metrics = (await client.get("/metrics")).text
        assert 'bertserve_cache_hits_total{tier="memory"} 3.0' in metrics
        assert 'bertserve_cache_misses_total{tier="memory"} 3.0' in metrics
    assert first == await _fresh(make_settings, "/embed", {"inputs": TEXTS})


async def test_options_after_the_cache_stay_exact(make_settings: Callable[..., Settings]) -> None:
    variants: list[dict[str, object]] = [
        {"inputs": TEXTS},
        {"inputs": TEXTS, "normalize": False},
        {"inputs": TEXTS, "dimensions": 7},
        {"inputs": TEXTS, "truncation_direction": "left"},
    ]
    app = create_app(make_settings(cache="memory"))
    cached = []
    async for client in started_client(app):
        for payload in variants:
            cached.append((await client.post("/embed", json=payload)).json())
        scores = (await client.post("/classify", json={"inputs": TEXTS})).json()
        raw = (await client.post("/classify", json={"inputs": TEXTS, "raw_scores": True, "top_k": 1})).json()
    for payload, got in zip(variants, cached, strict=True):
        np.testing.assert_allclose(got, await _fresh(make_settings, "/embed", payload), atol=1e-6)
    assert scores == await _fresh(make_settings, "/classify", {"inputs": TEXTS})
    assert raw == await _fresh(make_settings, "/classify", {"inputs": TEXTS, "raw_scores": True, "top_k": 1})


async def test_different_models_never_share_entries(
    make_settings: Callable[..., Settings], tiny_embedder: Path, other_embedder: Path
) -> None:
    models = [{"name": "a", "source": str(tiny_embedder)}, {"name": "b", "source": str(other_embedder)}]
    app = create_app(make_settings(cache="memory", models=models))
    async for client in started_client(app):
        a = np.array((await client.post("/embed", json={"inputs": TEXTS, "model": "a"})).json())
        b = np.array((await client.post("/embed", json={"inputs": TEXTS, "model": "b"})).json())
        assert not np.allclose(a, b)
        again = np.array((await client.post("/embed", json={"inputs": TEXTS, "model": "b"})).json())
        np.testing.assert_array_equal(again, b)


async def test_single_flight_computes_identical_texts_once(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(cache="memory"))
    async for client in started_client(app):
        engine = _engine(app)
        gated = GatedBackend(engine)
        gated.gate.clear()
        payload = {"inputs": ["same text", "same text", "other"]}
        requests = [asyncio.ensure_future(client.post("/embed", json=payload)) for _ in range(8)]
        await asyncio.to_thread(gated.entered.wait, 5)
        await asyncio.sleep(0.05)
        gated.gate.set()
        answers = [r.json() for r in await asyncio.gather(*requests)]
        assert all(answer == answers[0] for answer in answers)
        assert answers[0][0] == answers[0][1]
        assert _texts_seen(gated) == 2, gated.batches
        assert "bertserve_cache_inflight_joins_total 14.0" in (await client.get("/metrics")).text


async def test_cache_control_bypass(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(cache="memory"))
    async for client in started_client(app):
        gated = GatedBackend(_engine(app))
        no_store = {"cache-control": "no-store"}
        await client.post("/embed", json={"inputs": "bypassed"}, headers=no_store)
        await client.post("/embed", json={"inputs": "bypassed"}, headers=no_store)
        assert _texts_seen(gated) == 2  # neither read nor written
        await client.post("/embed", json={"inputs": "bypassed"}, headers={"cache-control": "no-cache"})
        assert _texts_seen(gated) == 3  # computed again, and stored
        await client.post("/embed", json={"inputs": "bypassed"})
        assert _texts_seen(gated) == 3


async def test_openai_usage_counts_cached_inputs(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(cache="memory"))
    async for client in started_client(app):
        body = {"input": TEXTS, "model": "tiny-embed"}
        first = (await client.post("/v1/embeddings", json=body)).json()["usage"]
        second = (await client.post("/v1/embeddings", json=body)).json()["usage"]
        assert first == second
        assert first["prompt_tokens"] > len(TEXTS)


async def test_two_instances_share_the_redis_tier(
    make_settings: Callable[..., Settings], redis_server: RedisServer
) -> None:
    # A generous timeout: this test is about sharing, and a loaded CI machine can hold a write past the
    # 50 ms default (the tier then skips Redis for its backoff, by design, and nothing is shared).
    settings = make_settings(cache="memory+redis", redis_url=redis_server.url, redis_timeout_ms=2000)
    writer, reader = create_app(settings), create_app(settings)
    async for client in started_client(writer):
        written = (await client.post("/embed", json={"inputs": TEXTS})).json()
        await asyncio.sleep(0.2)  # writes to Redis are behind the response
    assert int(redis_server.command("DBSIZE").strip(b":\r\n")) == len(TEXTS)
    async for client in started_client(reader):
        gated = GatedBackend(_engine(reader))
        assert (await client.post("/embed", json={"inputs": TEXTS})).json() == written
        assert _texts_seen(gated) == 0
        metrics = (await client.get("/metrics")).text
        assert 'bertserve_cache_hits_total{tier="redis"} 3.0' in metrics
        assert "bertserve_redis_roundtrip_seconds_count" in metrics


async def test_redis_killed_and_restarted_under_load(
    make_settings: Callable[..., Settings], redis_server: RedisServer
) -> None:
    settings = make_settings(
        cache="redis", redis_url=redis_server.url, redis_backoff_s=0.3, redis_timeout_ms=100
    )
    texts = [f"load text {i % 25}" for i in range(150)]
    expected = np.array(await _fresh(make_settings, "/embed", {"inputs": texts}))
    app = create_app(settings)
    async for client in started_client(app):

        async def send(client: httpx.AsyncClient, i: int) -> None:
            response = await client.post("/embed", json={"inputs": texts[i]})
            assert response.status_code == 200
            np.testing.assert_allclose(response.json()[0], expected[i], atol=1e-6)

        for start in range(0, 150, 10):
            if start == 50:
                redis_server.kill()
            if start == 100:
                redis_server.start()  # empty again: nothing was persisted
                await asyncio.sleep(0.4)  # the breaker's back-off
            await asyncio.gather(*(send(client, i) for i in range(start, start + 10)))
        # On a loaded machine a call after the restart can time out (100 ms) and back off once more,
        # and the requests above can all finish inside that back-off: keep asking for a while.
        for _ in range(30):
            if int(redis_server.command("DBSIZE").strip(b":\r\n")) > 0:
                break
            await send(client, 149)
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)
        metrics = (await client.get("/metrics")).text
        assert 'bertserve_cache_errors_total{tier="redis"}' in metrics
        assert 'bertserve_cache_errors_total{tier="redis"} 0.0' not in metrics
    assert int(redis_server.command("DBSIZE").strip(b":\r\n")) > 0, "L2 not used again after restart"


async def test_start_with_redis_down(
    make_settings: Callable[..., Settings], redis_server: RedisServer
) -> None:
    redis_server.kill()
    app = create_app(make_settings(cache="memory+redis", redis_url=redis_server.url))
    async for client in started_client(app):
        response: httpx.Response = await client.post("/embed", json={"inputs": TEXTS})
        assert response.status_code == 200
