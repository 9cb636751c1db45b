"""Every error row of the API: status, shape, and a message that helps; never a 500."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from service.app import create_app
from service.settings import Settings
from tests.integration.conftest import started_client

pytestmark = pytest.mark.integration


def assert_error(response: httpx.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_type"}
    assert body["error_type"] == error_type
    return str(body["error"])


@pytest.mark.parametrize("inputs", [[], "", ["ok", ""]])
async def test_empty_input_is_400(client: httpx.AsyncClient, inputs: object) -> None:
    assert_error(await client.post("/embed", json={"inputs": inputs}), 400, "empty")
    assert_error(await client.post("/classify", json={"inputs": inputs}), 400, "empty")


async def test_unknown_model_is_404(client: httpx.AsyncClient) -> None:
    message = assert_error(
        await client.post("/embed", json={"inputs": "x", "model": "nope"}), 404, "model_not_found"
    )
    assert "nope" in message
    assert "tiny-embed" in message


async def test_wrong_task_is_400(client: httpx.AsyncClient) -> None:
    assert_error(
        await client.post("/classify", json={"inputs": "x", "model": "tiny-embed"}), 400, "wrong_task"
    )


async def test_too_long_without_truncation_is_422_with_counts(client: httpx.AsyncClient) -> None:
    text = " ".join(["word"] * 100)  # 100 tokens + [CLS] + [SEP]; the tiny model takes 64
    message = assert_error(
        await client.post("/embed", json={"inputs": ["fine", text], "truncate": False}), 422, "input_too_long"
    )
    assert "input 1 has 102 tokens" in message
    assert "limit of 64" in message


@pytest.mark.parametrize(
    "payload",
    [
        {"inputs": 5},
        {"inputs": ["a", 3]},
        {"nothing": 1},
        {"inputs": "a", "dimensions": 0},
        {"inputs": "a", "truncation_direction": "middle"},
        {"inputs": "a", "top_k": -1},
    ],
)
async def test_invalid_requests_are_422(client: httpx.AsyncClient, payload: dict[str, object]) -> None:
    route = "/classify" if "top_k" in payload else "/embed"
    assert_error(await client.post(route, json=payload), 422, "validation")


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs": ["a",',
        b'{"inputs": "\xff\xfe caf\xe9"}',  # not UTF-8
        b"\xff",
        b'{"inputs": "\\ud800"}',  # an unpaired surrogate, escaped: valid JSON, no text
        b'{"inputs": ["fine", "x\\udc00y"]}',
        b'{"inputs": "a", "truncate": 1}',  # strict JSON types: no coercion
        b'{"inputs": "a", "truncate": "true"}',
        b'{"inputs": "a", "truncation_direction": "RIGHT"}',
    ],
)
async def test_malformed_bodies_are_422(client: httpx.AsyncClient, body: bytes) -> None:
    for route in ("/embed", "/classify"):
        response = await client.post(route, content=body, headers={"content-type": "application/json"})
        assert_error(response, 422, "validation")
    openai = await client.post(
        "/v1/embeddings", content=body.replace(b'"inputs"', b'"model": "tiny-embed", "input"')
    )
    assert openai.status_code == 422
    assert openai.json()["error"]["code"] == "validation"


@pytest.mark.parametrize(
    ("route", "fields"),
    [
        ("/embed", {"normalize": "true"}),
        ("/embed", {"dimensions": 5.0}),
        ("/embed", {"dimensions": True}),
        ("/embed", {"dimensions": "5"}),
        ("/classify", {"raw_scores": 1}),
        ("/classify", {"top_k": 2.0}),
    ],
)
async def test_json_types_are_strict(
    client: httpx.AsyncClient, route: str, fields: dict[str, object]
) -> None:
    assert_error(await client.post(route, json={"inputs": "a", **fields}), 422, "validation")


async def test_tei_direction_spellings(client: httpx.AsyncClient) -> None:
    for direction in ("right", "left", "Right", "Left"):
        body = {"inputs": "a b c", "truncation_direction": direction}
        assert (await client.post("/embed", json=body)).status_code == 200


async def test_dimensions_over_model_size_is_422(client: httpx.AsyncClient) -> None:
    message = assert_error(
        await client.post("/embed", json={"inputs": "a", "dimensions": 33}), 422, "validation"
    )
    assert "33" in message


async def test_error_does_not_echo_input(client: httpx.AsyncClient) -> None:
    secret = "my-very-private-text"
    response = await client.post("/embed", json={"inputs": [secret, 7]})
    assert secret not in response.text


async def test_limits_are_413(make_settings: Callable[..., Settings]) -> None:
    app = create_app(
        make_settings(max_client_batch_size=3, max_input_chars=50, max_total_chars=120, max_body_bytes=2048)
    )
    async for client in started_client(app):
        assert_error(await client.post("/embed", json={"inputs": ["a"] * 4}), 413, "payload_too_large")
        assert_error(await client.post("/embed", json={"inputs": "x" * 51}), 413, "payload_too_large")
        total = assert_error(
            await client.post("/embed", json={"inputs": ["z" * 45] * 3}), 413, "payload_too_large"
        )
        assert "135 characters in all inputs; the limit is 120" in total
        big = await client.post("/embed", json={"inputs": ["y" * 40] * 60})
        assert_error(big, 413, "payload_too_large")
        openai = await client.post(
            "/v1/embeddings", content=b"{" + b" " * 4096 + b"}", headers={"content-type": "application/json"}
        )
        assert openai.status_code == 413
        assert openai.json()["error"]["code"] == "payload_too_large"
        assert (await client.post("/embed", json={"inputs": ["a"] * 3})).status_code == 200


async def test_not_ready_is_503(make_settings: Callable[..., Settings]) -> None:
    # Lifespan not entered: models never load, so inference routes must say "not ready".
    app = create_app(make_settings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert_error(await client.post("/embed", json={"inputs": "x"}), 503, "not_ready")
        assert (await client.get("/ready")).status_code == 503
        assert (await client.get("/health")).status_code == 200


async def test_unknown_route_uses_error_shape(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/nope"), 404, "not_found")
    assert_error(await client.get("/embed"), 405, "method_not_allowed")
