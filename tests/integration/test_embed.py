"""POST /embed on the real app with a tiny random model, compared with plain transformers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.app import create_app
from service.settings import Settings
from tests.integration.conftest import started_client
from tests.reference import reference_embeddings

pytestmark = pytest.mark.integration

TEXTS = [
    "A man is playing a guitar.",
    "short",
    "The quick brown fox jumps over the lazy dog while the cat watches from the window sill.",
    "Ünïcödé text, emoji 🚀 and numbers 12345.",
]


async def test_embed_matches_reference(client: httpx.AsyncClient, tiny_embedder: Path) -> None:
    response = await client.post("/embed", json={"inputs": TEXTS})
    assert response.status_code == 200
    vectors = np.array(response.json())
    assert vectors.shape == (len(TEXTS), 32)
    expected = reference_embeddings(tiny_embedder, TEXTS)
    np.testing.assert_allclose(vectors, expected, atol=2e-5)
    assert int(response.headers["x-compute-tokens"]) > len(TEXTS)


async def test_single_string_gives_one_row(client: httpx.AsyncClient) -> None:
    response = await client.post("/embed", json={"inputs": "hello"})
    assert response.status_code == 200
    assert len(response.json()) == 1


async def test_unnormalized_and_dimensions(client: httpx.AsyncClient, tiny_embedder: Path) -> None:
    raw = np.array((await client.post("/embed", json={"inputs": TEXTS[:2], "normalize": False})).json())
    expected = reference_embeddings(tiny_embedder, TEXTS[:2], normalize=False)
    np.testing.assert_allclose(raw, expected, atol=2e-5)
    cut = np.array((await client.post("/embed", json={"inputs": TEXTS[:2], "dimensions": 8})).json())
    assert cut.shape == (2, 8)
    manual = raw[:, :8] / np.linalg.norm(raw[:, :8], axis=1, keepdims=True)
    np.testing.assert_allclose(cut, manual, atol=2e-5)


async def test_concurrent_requests_each_get_their_own_answer(
    client: httpx.AsyncClient, tiny_embedder: Path
) -> None:
    texts = [f"sentence number {i} " + "word " * (i % 7) for i in range(12)]
    responses = await asyncio.gather(*(client.post("/embed", json={"inputs": t}) for t in texts))
    got = np.array([r.json()[0] for r in responses])
    np.testing.assert_allclose(got, reference_embeddings(tiny_embedder, texts), atol=2e-5)


async def test_truncation_directions(client: httpx.AsyncClient) -> None:
    long_text = " ".join(f"w{i}" for i in range(200))  # far over the tiny model's 64 positions
    right = await client.post("/embed", json={"inputs": long_text})
    left = await client.post("/embed", json={"inputs": long_text, "truncation_direction": "Left"})
    assert right.status_code == left.status_code == 200
    assert right.headers["x-compute-tokens"] == "64"
    assert not np.allclose(right.json(), left.json())


async def test_model_selected_by_name(client: httpx.AsyncClient) -> None:
    response = await client.post("/embed", json={"inputs": "x", "model": "tiny-embed"})
    assert response.status_code == 200


async def test_torch_and_onnx_runtimes_agree(make_settings: Callable[..., Settings]) -> None:
    answers = {}
    for runtime in ("torch", "onnx"):
        app = create_app(make_settings(runtime=runtime))
        async for client in started_client(app):
            info = (await client.get("/info")).json()
            assert {m["runtime"] for m in info["models"]} == {runtime}
            embedded = (await client.post("/embed", json={"inputs": TEXTS})).json()
            classified = (await client.post("/classify", json={"inputs": TEXTS, "raw_scores": True})).json()
            answers[runtime] = (np.array(embedded), classified)
    torch_rows, onnx_rows = answers["torch"][0], answers["onnx"][0]
    assert (torch_rows * onnx_rows).sum(axis=1).min() >= 0.9999
    for ours, theirs in zip(answers["torch"][1], answers["onnx"][1], strict=True):
        assert [x["label"] for x in ours] == [x["label"] for x in theirs]
        np.testing.assert_allclose([x["score"] for x in ours], [x["score"] for x in theirs], atol=1e-4)
