"""POST /v1/embeddings: OpenAI response and error shapes."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.integration


async def test_float_and_base64_agree_with_embed(client: httpx.AsyncClient) -> None:
    texts = ["first sentence", "a second, longer sentence"]
    plain = np.array((await client.post("/embed", json={"inputs": texts})).json())
    response = await client.post("/v1/embeddings", json={"input": texts, "model": "tiny-embed"})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert body["model"] == "tiny-embed"
    assert [item["index"] for item in body["data"]] == [0, 1]
    np.testing.assert_allclose([item["embedding"] for item in body["data"]], plain, atol=1e-6)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 4
    encoded = await client.post(
        "/v1/embeddings", json={"input": texts[0], "model": "tiny-embed", "encoding_format": "base64"}
    )
    vector = np.frombuffer(base64.b64decode(encoded.json()["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vector, plain[0], atol=1e-6)


async def test_dimensions(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/embeddings", json={"input": "x", "model": "tiny-embed", "dimensions": 5}
    )
    vector = np.array(response.json()["data"][0]["embedding"])
    assert vector.shape == (5,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"input": "x", "model": "missing"}, 404, "model_not_found"),
        ({"input": [], "model": "tiny-embed"}, 400, "empty"),
        ({"input": "x"}, 422, "validation"),
        ({"input": "x", "model": "tiny-classify"}, 400, "wrong_task"),
    ],
)
async def test_errors_use_openai_shape(
    client: httpx.AsyncClient, payload: dict[str, object], status: int, code: str
) -> None:
    response = await client.post("/v1/embeddings", json=payload)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"
    assert error["message"]
