"""/health, /ready, /info, /metrics and /docs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from models.loading import describe_model

pytestmark = pytest.mark.integration


async def test_ready_and_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).status_code == 200


async def test_info_lists_models(client: httpx.AsyncClient, tiny_embedder: Path) -> None:
    info = (await client.get("/info")).json()
    assert info["ready"] is True
    by_name = {model["name"]: model for model in info["models"]}
    assert list(by_name) == ["tiny-embed", "tiny-classify"]
    embed = by_name["tiny-embed"]
    assert embed["fingerprint"] == describe_model(tiny_embedder).fingerprint
    assert embed["task"] == "embed"
    assert embed["pooling"] == "mean"
    assert embed["device"] == "cpu"
    assert embed["dtype"] == "float32"
    assert embed["max_input_tokens"] == 64
    assert by_name["tiny-classify"]["labels"] == ["negative", "neutral", "positive"]
    assert by_name["tiny-classify"]["fingerprint"] != embed["fingerprint"]


async def test_metrics_count_requests(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.post("/embed", json={"inputs": "x"})
    await client.post("/embed", json={"inputs": []})
    text = (await client.get("/metrics")).text
    assert 'bertserve_requests_total{model="tiny-embed",route="/embed",status="200"} 3.0' in text
    assert 'bertserve_requests_total{model="",route="/embed",status="400"} 1.0' in text
    assert "bertserve_model_info{" in text


async def test_openapi_documents_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for route in ("/embed", "/classify", "/predict", "/v1/embeddings", "/info", "/ready"):
        assert route in paths
    assert (await client.get("/docs")).status_code == 200
