"""/health, /ready, /info, /metrics and /docs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from models.runtime.errors import ModelLoadError
from models.runtime.folders import describe_model
from service.app import create_app
from service.logs import configure_logging
from service.settings import Settings
from tests.integration.conftest import load_failure, started_client

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


def broken_export(description: object, target: Path) -> Path:
    """Stands in for an exporter that cannot handle the model."""
    raise ModelLoadError("exporter cannot handle this model")


async def test_auto_runtime_falls_back_to_torch_when_export_fails(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("models.runtime.export.export_onnx", broken_export)
    app = create_app(make_settings(home=tmp_path))  # empty ONNX cache: every model needs an export
    async for client in started_client(app):
        info = (await client.get("/info")).json()
        assert {model["runtime"] for model in info["models"]} == {"torch"}
        assert (await client.post("/embed", json={"inputs": "still served"})).status_code == 200


async def test_explicit_onnx_runtime_fails_loudly(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("models.runtime.export.export_onnx", broken_export)
    app = create_app(make_settings(runtime="onnx", home=tmp_path))
    async with app.router.lifespan_context(app):
        assert "exporter cannot handle" in await load_failure(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ready = await client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["error_type"] == "load_failed"
            failed = await client.post("/embed", json={"inputs": "x"})
            assert failed.status_code == 503
            assert "loading failed" in failed.json()["error"]


async def test_request_ids_round_trip(client: httpx.AsyncClient) -> None:
    given = await client.post("/embed", json={"inputs": "x"}, headers={"x-request-id": "trace-42.a"})
    assert given.headers["x-request-id"] == "trace-42.a"
    made = await client.post("/embed", json={"inputs": []})
    assert len(made.headers["x-request-id"]) == 32
    hostile = await client.get("/health", headers={"x-request-id": "bad id\twith spaces"})
    assert hostile.headers["x-request-id"] != "bad id\twith spaces"


async def test_access_log_lines_are_json_without_texts(
    app: FastAPI, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("info", "json")
    secret = "a private sentence nobody may log"
    try:
        await client.post("/embed", json={"inputs": [secret, "second"]}, headers={"x-request-id": "r-1"})
        app.state.access_log.flush()  # access lines are written in batches
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("request_id") == "r-1"]
    assert len(access) == 1
    entry = access[0]
    assert (entry["route"], entry["model"], entry["status"], entry["items"]) == (
        "/embed",
        "tiny-embed",
        200,
        2,
    )
    assert entry["tokens"] > 2
    assert entry["duration_ms"] > 0
    assert all(secret not in json.dumps(line) for line in lines)
