"""A lone small batch runs on the event loop's thread; under concurrency every batch goes to the workers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI

from models.runtime.tokenization import ModelInputs
from service.app import create_app
from service.engine.model_engine import ModelEngine
from service.settings import Settings
from tests.integration.conftest import started_client
from tests.reference import reference_embeddings

pytestmark = pytest.mark.integration


class _Threads:
    """Wraps the engine's real backend and records the thread of every model call."""

    def __init__(self, engine: ModelEngine) -> None:
        self.inner = engine.backend
        self.device, self.dtype = self.inner.device, self.inner.dtype
        self.streams, self.lone_all_threads = self.inner.streams, self.inner.lone_all_threads
        self.token_multiple = self.inner.token_multiple
        self.threads: list[int] = []
        engine.backend = engine.batcher.backend = self

    def forward(self, batch: ModelInputs, alone: bool = False) -> np.ndarray:
        self.threads.append(threading.get_ident())
        return self.inner.forward(batch, alone)


def _recorded(app: FastAPI) -> _Threads:
    return _Threads(app.state.registry.get("tiny-embed", "embed"))


def _loop_batches(metrics: str) -> float:
    prefix = 'bertserve_loop_batches_total{model="tiny-embed"} '
    lines = [line for line in metrics.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


async def test_a_lone_request_runs_on_the_loop_thread_with_the_exact_answer(
    make_settings: Callable[..., Settings], tiny_embedder: Path
) -> None:
    app = create_app(make_settings(cache="none"))
    texts = ["a lone request", "another one, later"]
    async for client in started_client(app):
        recorded = _recorded(app)
        responses = [await client.post("/embed", json={"inputs": text}) for text in texts]
        assert [r.status_code for r in responses] == [200, 200]
        got = np.array([r.json()[0] for r in responses])
        np.testing.assert_allclose(got, reference_embeddings(tiny_embedder, texts), atol=2e-5)
        assert recorded.threads == [threading.get_ident()] * 2  # the test's loop runs the app
        assert _loop_batches((await client.get("/metrics")).text) == 2


async def test_requests_that_arrive_together_all_go_to_the_workers(
    make_settings: Callable[..., Settings], tiny_embedder: Path
) -> None:
    """Each request, on its own, finds the engines empty when it is tokenized: without the loop turns
    taken before a batch runs on the loop, they would each run there, one after the other."""
    app = create_app(make_settings(cache="none"))
    texts = [f"request {i} arrives with the others" for i in range(12)]
    async for client in started_client(app):
        recorded = _recorded(app)
        responses = await asyncio.gather(*(client.post("/embed", json={"inputs": t}) for t in texts))
        assert all(r.status_code == 200 for r in responses)
        got = np.array([r.json()[0] for r in responses])
        np.testing.assert_allclose(got, reference_embeddings(tiny_embedder, texts), atol=2e-5)
        assert threading.get_ident() not in recorded.threads
        assert _loop_batches((await client.get("/metrics")).text) == 0


@pytest.mark.parametrize(
    ("overrides", "text"),
    [
        ({"loop_batch_tokens": 0}, "short"),
        ({"loop_batch_tokens": 8}, "a request with more padded tokens than the setting allows"),
        ({"max_wait_ms": 5}, "short, but batches wait for company"),
        ({}, ["short", "much longer than the first one, so the batch would be mostly padding"]),
    ],
)
async def test_batches_the_settings_keep_off_the_loop_go_to_the_workers(
    make_settings: Callable[..., Settings], overrides: dict[str, float], text: str | list[str]
) -> None:
    app = create_app(make_settings(cache="none", **overrides))
    async for client in started_client(app):
        recorded = _recorded(app)
        assert (await client.post("/embed", json={"inputs": text})).status_code == 200
        assert recorded.threads
        assert threading.get_ident() not in recorded.threads


async def test_the_loop_and_the_workers_give_the_same_rows_to_the_bit(
    make_settings: Callable[..., Settings],
) -> None:
    """The loop runs the batch the workers would make of the same items (same padding, same order)."""
    body = {"inputs": ["a last four words", "three words here", "and three more"], "normalize": False}
    answers = []
    for setting in (128, 0):
        app = create_app(make_settings(cache="none", loop_batch_tokens=setting))
        async for client in started_client(app):
            recorded = _recorded(app)
            answers.append((await client.post("/embed", json=body)).json())
            assert (threading.get_ident() in recorded.threads) == (setting > 0)
    assert answers[0] == answers[1]
