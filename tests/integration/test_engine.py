"""The batching engine through the HTTP API: merged batches, exact answers, cancellation, overload."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI

from models.runtime.onnx import OnnxBackend
from service.app import create_app
from service.engine.model_engine import ModelEngine
from service.settings import Settings
from tests.integration.conftest import started_client
from tests.integration.gated import GatedBackend
from tests.reference import reference_embeddings

pytestmark = pytest.mark.integration


def _held(app: FastAPI) -> tuple[ModelEngine, GatedBackend]:
    """The embed engine with its backend wrapped and the gate closed: batches wait until it opens."""
    engine = _engine(app)
    gated = GatedBackend(engine)
    gated.gate.clear()
    return engine, gated


def _engine(app: FastAPI, name: str = "tiny-embed") -> ModelEngine:
    return app.state.registry.get(name, "embed")


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (at most a second) until ``condition`` holds; the test's next assertion says if it never did."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.01)


async def _until_depth(engine: ModelEngine, field: int, count: int) -> None:
    """Wait until field ``field`` of the queue depth (requests, items, tokens) reaches ``count``."""
    await _until(functools.partial(_depth_is, engine, field, count))


def _depth_is(engine: ModelEngine, field: int, count: int) -> bool:
    return engine.queue.depth[field] == count


async def _drained(engine: ModelEngine) -> None:
    for _ in range(200):
        if engine.queue.depth == (0, 0, 0):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"queue did not drain: {engine.queue.depth}")


async def test_concurrent_requests_share_batches_and_get_their_own_rows(
    make_settings: Callable[..., Settings], tiny_embedder: Path
) -> None:
    app = create_app(make_settings(cache="none"))
    texts = [f"request {i} says " + "hello " * (i % 9) for i in range(24)]
    async for client in started_client(app):
        _, gated = _held(app)  # hold the first batch so that the others queue up behind it
        first = asyncio.ensure_future(client.post("/embed", json={"inputs": "warm"}))
        await asyncio.to_thread(gated.entered.wait, 5)
        pending = [asyncio.ensure_future(client.post("/embed", json={"inputs": t})) for t in texts]
        await _until(lambda: _engine(app).queue.depth[1] == len(texts))
        gated.gate.set()
        responses = await asyncio.gather(first, *pending)
        assert all(r.status_code == 200 for r in responses)
        got = np.array([r.json()[0] for r in responses[1:]])
        np.testing.assert_allclose(got, reference_embeddings(tiny_embedder, texts), atol=2e-5)
        assert len(gated.batches) < len(texts) / 4, f"{len(gated.batches)} model calls"
        assert float(responses[1].headers["x-queue-time"]) > 0
        await _drained(_engine(app))


async def test_large_client_batch_is_split_and_reassembled(
    make_settings: Callable[..., Settings], tiny_embedder: Path
) -> None:
    app = create_app(make_settings(cache="none", max_batch_tokens=96, max_batch_requests=5))
    texts = [" ".join(["word"] * (i % 13 + 1)) + f" {i}" for i in range(40)]
    async for client in started_client(app):
        gated = GatedBackend(_engine(app))
        response = await client.post("/embed", json={"inputs": texts})
        assert response.status_code == 200
        np.testing.assert_allclose(response.json(), reference_embeddings(tiny_embedder, texts), atol=2e-5)
        assert len(gated.batches) >= 8
        for batch in gated.batches:
            assert len(batch) <= 5
            assert len(batch) * max(len(row) for row in batch) <= 96


async def test_cancelled_client_never_reaches_the_model(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(cache="none"))
    async for client in started_client(app):
        engine, gated = _held(app)
        blocker = asyncio.ensure_future(client.post("/embed", json={"inputs": "first"}))
        await asyncio.to_thread(gated.entered.wait, 5)
        doomed = asyncio.ensure_future(client.post("/embed", json={"inputs": "zebra zebra zebra"}))
        await _until_depth(engine, 1, 1)
        doomed.cancel()
        await asyncio.sleep(0.05)
        gated.gate.set()
        assert (await blocker).status_code == 200
        assert (await client.post("/embed", json={"inputs": "after"})).status_code == 200
        zebra = engine.tokenizer.encode(["zebra"], truncate=True)[0].ids[1]
        assert not any(zebra in row for batch in gated.batches for row in batch)
        await _drained(engine)


async def test_overload_gets_429_with_retry_after(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(cache="none", max_concurrent_requests=3))
    async for client in started_client(app):
        engine, gated = _held(app)
        tasks = [asyncio.ensure_future(client.post("/embed", json={"inputs": f"t{i}"})) for i in range(3)]
        await _until_depth(engine, 0, 3)
        rejected = await client.post("/embed", json={"inputs": "one too many"})
        assert rejected.status_code == 429
        assert rejected.headers["retry-after"] == "1"
        assert rejected.json()["error_type"] == "overloaded"
        gated.gate.set()
        assert [r.status_code for r in await asyncio.gather(*tasks)] == [200, 200, 200]
        await _drained(engine)
        metrics = (await client.get("/metrics")).text
        assert 'bertserve_rejections_total{model="tiny-embed",reason="queue_requests"} 1.0' in metrics


async def test_token_bound_gets_429(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(cache="none", max_queue_tokens=100))
    async for client in started_client(app):
        engine, gated = _held(app)
        first = asyncio.ensure_future(client.post("/embed", json={"inputs": "held in the model"}))
        await asyncio.to_thread(gated.entered.wait, 5)
        queued = asyncio.ensure_future(client.post("/embed", json={"inputs": ["a b c d e"] * 8}))
        await _until_depth(engine, 1, 8)
        rejected = await client.post("/embed", json={"inputs": ["f g h i j"] * 8})
        assert rejected.status_code == 429
        gated.gate.set()
        assert (await first).status_code == (await queued).status_code == 200
        await _drained(engine)


async def test_deadline_gives_504_and_queue_drains(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(cache="none", request_timeout_s=0.3))
    async for client in started_client(app):
        engine, gated = _held(app)
        responses = asyncio.gather(*(client.post("/embed", json={"inputs": f"slow {i}"}) for i in range(4)))
        await asyncio.sleep(0.6)
        gated.gate.set()
        statuses = [r.status_code for r in await responses]
        assert statuses == [504] * 4
        assert (await client.post("/embed", json={"inputs": "on time"})).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'bertserve_rejections_total{model="tiny-embed",reason="deadline"} 4.0' in metrics
        await _drained(engine)
        # only the batch already inside the model ran; the expired ones were dropped before it
        assert len(gated.batches) <= 2


async def test_failing_batch_answers_500_without_internals(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(cache="none"))
    async for client in started_client(app):
        engine = _engine(app)
        gated = GatedBackend(engine)
        gated.fail_marker = engine.tokenizer.encode(["explode"], truncate=True)[0].ids[1]
        failed = await client.post("/embed", json={"inputs": ["fine", "explode"]})
        assert failed.status_code == 500
        assert failed.json()["error_type"] == "backend"
        assert "secret" not in failed.text
        assert "CUDA" not in failed.text
        assert (await client.post("/embed", json={"inputs": "fine again"})).status_code == 200
        await _drained(engine)


def _leaving_client(app: FastAPI, body: bytes, left: asyncio.Event) -> tuple[asyncio.Future[None], list[Any]]:
    """POST ``body`` to /embed straight through ASGI; the client disconnects once ``left`` is set."""
    sent: list[dict[str, Any]] = []
    bodies = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if bodies:
            return bodies.pop()
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "method": "POST",
        "path": "/embed",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
    }
    return asyncio.ensure_future(app(scope, receive, send)), sent


async def test_client_disconnect_drops_its_items_and_answers_499(
    make_settings: Callable[..., Settings],
) -> None:
    """A client that goes away (http.disconnect from the server) while queued: its items never reach
    the model, and the request is counted and logged with status 499."""
    app = create_app(make_settings(cache="none"))
    async for client in started_client(app):
        engine, gated = _held(app)
        blocker = asyncio.ensure_future(client.post("/embed", json={"inputs": "first"}))
        await asyncio.to_thread(gated.entered.wait, 5)
        left = asyncio.Event()
        doomed, sent = _leaving_client(app, b'{"inputs": "zebra zebra"}', left)
        await _until_depth(engine, 1, 1)
        left.set()
        await asyncio.wait_for(doomed, 5)
        assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [499]
        gated.gate.set()
        assert (await blocker).status_code == 200
        zebra = engine.tokenizer.encode(["zebra"], truncate=True)[0].ids[1]
        assert not any(zebra in row for batch in gated.batches for row in batch)
        metrics = (await client.get("/metrics")).text
        assert 'bertserve_requests_total{model="tiny-embed",route="/embed",status="499"} 1.0' in metrics
        await _drained(engine)


async def _post_half_a_body(app: FastAPI) -> list[int]:
    """POST the first part of a body to /embed straight through ASGI, then disconnect; the statuses sent."""
    messages = [
        {"type": "http.request", "body": b'{"inputs": "half a bo', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json")]
    await app({"type": "http", "method": "POST", "path": "/embed", "headers": headers}, receive, send)
    return [m["status"] for m in sent if m["type"] == "http.response.start"]


async def test_a_client_gone_before_the_end_of_its_body_is_a_499_not_a_server_error(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(cache="none"))
    async for client in started_client(app):
        assert await _post_half_a_body(app) == [499]
        metrics = (await client.get("/metrics")).text
        assert 'route="/embed",status="499"} 1.0' in metrics
        assert 'route="/embed",status="500"}' not in metrics


async def test_two_streams_run_two_batches_at_once_and_reassemble_a_client_batch(
    make_settings: Callable[..., Settings], tiny_embedder: Path
) -> None:
    app = create_app(make_settings(cache="none", threads=2, streams=2))
    # Lengths from 2 to 25 words: the batch length ratio spreads the request over several model batches.
    texts = [f"client item {i} " + "word " * (i % 23) for i in range(32)]
    async for client in started_client(app):
        engine = _engine(app)
        assert (engine.batcher.workers, engine.backend.streams) == (2, 2)
        gated = GatedBackend(engine)
        gated.gate.clear()
        pending = asyncio.ensure_future(client.post("/embed", json={"inputs": texts}))
        await _until(functools.partial(_inside_is, gated, 2))
        assert gated.inside == 2, "the second worker never took a batch while the first was held"
        gated.gate.set()
        response = await pending
        assert response.status_code == 200
        np.testing.assert_allclose(
            np.array(response.json()), reference_embeddings(tiny_embedder, texts), atol=2e-5
        )
        assert len(gated.batches) >= 3
        assert gated.most_inside == 2
        # Batches taken while others wait or run keep their stream's share of the threads.
        assert gated.alone[:2] == [False, False]
        info = (await client.get("/info")).json()["models"][0]
        assert (info["streams"], info["batch_length_ratio"], info["lone_all_threads"]) == (2, 1.25, True)
        await _drained(engine)
        # A request on an idle model runs alone: on every thread, from ONNX Runtime's second session.
        assert isinstance(gated.inner, OnnxBackend)
        assert gated.inner.lone_session is not None
        before = len(gated.alone)
        response = await client.post("/embed", json={"inputs": "one sentence on an idle model"})
        assert response.status_code == 200
        assert gated.alone[before:] == [True]


@pytest.mark.parametrize("lone_all_threads", [True, False])
async def test_a_batch_on_every_thread_holds_the_next_until_it_ends(
    make_settings: Callable[..., Settings], lone_all_threads: bool
) -> None:
    settings = make_settings(cache="none", threads=2, streams=2, lone_batch_all_threads=lone_all_threads)
    app = create_app(settings)
    async for client in started_client(app):
        engine, gated = _held(app)
        first = asyncio.ensure_future(client.post("/embed", json={"inputs": "the first request, alone"}))
        await _until(functools.partial(_inside_is, gated, 1))
        second = asyncio.ensure_future(client.post("/embed", json={"inputs": "a second one arrives"}))
        await _until(functools.partial(_admitted_none_waiting, engine, 2))  # the other worker took it
        assert engine.queue.depth[:2] == (2, 0)
        await asyncio.sleep(0.2)
        # With every thread busy on the lone batch, a second batch beside it would oversubscribe the
        # cores: it waits. A lone batch on its stream's share leaves the other stream free.
        assert gated.inside == (1 if lone_all_threads else 2)
        gated.gate.set()
        assert [r.status_code for r in await asyncio.gather(first, second)] == [200, 200]
        assert gated.most_inside == (1 if lone_all_threads else 2)
        # The one that waited met another batch (not low load): it keeps its stream's share.
        assert gated.alone == [True, False]
        await _drained(engine)


async def test_a_lone_batch_holds_back_the_other_cpu_models_too(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(cache="none", threads=2, streams=2))
    async for client in started_client(app):
        engine, gated = _held(app)
        classifier = GatedBackend(app.state.registry.get("tiny-classify", "classify"))
        first = asyncio.ensure_future(client.post("/embed", json={"inputs": "alone on the server"}))
        await _until(functools.partial(_inside_is, gated, 1))
        second = asyncio.ensure_future(client.post("/classify", json={"inputs": "another model's request"}))
        other = app.state.registry.get("tiny-classify", "classify")
        await _until(functools.partial(_admitted_none_waiting, other, 1))  # its worker took the batch
        assert other.queue.depth[:2] == (1, 0)
        await asyncio.sleep(0.3)
        # The threads are the machine's, not the model's: the classifier's batch waits too.
        assert (second.done(), classifier.inside, len(classifier.alone)) == (False, 0, 0)
        gated.gate.set()
        assert [r.status_code for r in await asyncio.gather(first, second)] == [200, 200]
        assert (gated.alone, classifier.alone) == ([True], [False])
        await _drained(engine)


async def test_a_lone_batch_gets_every_thread_by_default_and_not_when_turned_off(
    make_settings: Callable[..., Settings],
) -> None:
    for lone, expected in ((None, (2, 2, True)), (False, (2, 1, False))):
        options = {} if lone is None else {"lone_batch_all_threads": lone}
        app = create_app(make_settings(cache="none", threads=2, streams=2, **options))
        async for client in started_client(app):
            backend = _engine(app).backend
            assert isinstance(backend, OnnxBackend)
            assert (backend.streams, backend.lone_threads, backend.lone_session is not None) == expected
            info = (await client.get("/info")).json()["models"][0]
            assert info["lone_all_threads"] is expected[2]


def _admitted_none_waiting(engine: ModelEngine, requests: int) -> bool:
    """``requests`` admitted and no item waiting: every one was queued and taken by a worker."""
    return engine.queue.depth[:2] == (requests, 0)


def _inside_is(gated: GatedBackend, count: int) -> bool:
    return gated.inside == count
