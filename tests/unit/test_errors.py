"""One error table: each status has one OpenAI error type, in middleware and handlers alike."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.http.errors import ERROR_TABLE, OPENAI_ERROR_TYPES, error_body
from service.http.middleware import send_error

pytestmark = pytest.mark.unit


async def _middleware_body(path: str, status: int) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await send_error({"type": "http", "path": path}, send, status, "code", "message")
    assert messages[0]["status"] == status
    body: dict[str, Any] = json.loads(messages[1]["body"])
    return body


@pytest.mark.parametrize("status", sorted({status for status, _ in ERROR_TABLE.values()} | {401, 413, 429}))
async def test_middleware_and_handlers_share_the_openai_error_type(status: int) -> None:
    assert status in OPENAI_ERROR_TYPES
    body = await _middleware_body("/v1/embeddings", status)
    assert body == error_body("/v1/embeddings", status, "code", "message")
    assert body["error"]["type"] == OPENAI_ERROR_TYPES[status]
    assert await _middleware_body("/embed", status) == {"error": "message", "error_type": "code"}


def _openai_type(status: int) -> object:
    error = error_body("/v1/embeddings", status, "code", "message")["error"]
    assert isinstance(error, dict)
    return error["type"]


def test_rate_limits_and_timeouts_have_their_own_types() -> None:
    assert _openai_type(429) == "rate_limit_error"
    assert _openai_type(504) == "server_error"
    assert _openai_type(502) == "server_error"  # not listed: by its class
    assert _openai_type(418) == "invalid_request_error"
