"""Keys, texts and embeddings never reach the logs, /info, /metrics or an error body.

One app with API keys, logging at debug level in JSON (as served): a secret-looking key and a
distinctive text are sent through every error the API has, a batch fails inside the model, and then
everything the service wrote or answered is searched for them.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import httpx
import pytest

from service.app import create_app
from service.logs import JsonFormatter
from service.settings import Settings
from tests.integration.conftest import started_client
from tests.integration.gated import GatedBackend

pytestmark = pytest.mark.integration

KEY = "sk-live-7Hq2mZ9xV4pL0sKe8RtY3wUcN6bJ"
WRONG_KEY = "sk-live-Zz9Q8w7E6r5T4y3U2i1O0pAsDfGhJk"
TEXT = "Quentin's zebra-striped ocelot recites Rilke 4417"
#: An embedding row would show as its first floats; the tiny model's rows have 32 of them.
FLOAT_DIGITS = 7
JSON = {"content-type": "application/json"}


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Everything logged, at debug level, in the served JSON format."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def _every_error(client: httpx.AsyncClient) -> list[httpx.Response]:
    auth = {"authorization": f"Bearer {KEY}"}
    wrong = {"authorization": f"Bearer {WRONG_KEY}"}
    long_text = " ".join([TEXT] * 20)
    sent = [
        await client.post("/embed", json={"inputs": TEXT}, headers=wrong),  # 401
        await client.post("/v1/embeddings", json={"input": TEXT, "model": "tiny-embed"}, headers=wrong),
        await client.get("/info", headers=wrong),
        await client.post("/embed", json={"inputs": [TEXT, 7]}, headers=auth),  # 422 validation
        await client.post("/embed", json={"inputs": TEXT, "truncation_direction": TEXT}, headers=auth),
        await client.post("/embed", json={"inputs": TEXT, "dimensions": TEXT}, headers=auth),
        await client.post("/embed", json={"inputs": long_text, "truncate": False}, headers=auth),  # too long
        await client.post("/embed", json={"inputs": [TEXT, TEXT + "x" * 300]}, headers=auth),  # 413 chars
        await client.post("/embed", json={"inputs": [TEXT, ""]}, headers=auth),  # 400 empty
        await client.post("/classify", json={"inputs": TEXT, "model": "tiny-embed"}, headers=auth),
        await client.post("/embed", content=TEXT.encode() + b"\xff", headers={**auth, **JSON}),
        await client.post(
            "/embed", content=json.dumps({"inputs": TEXT + "\ud800"}), headers={**auth, **JSON}
        ),
    ]
    return sent


async def test_no_secret_in_logs_info_or_errors(
    make_settings: Callable[..., Settings], json_logs: io.StringIO
) -> None:
    app = create_app(make_settings(api_keys=[KEY], cache="none", max_input_chars=300, warmup=False))
    async for client in started_client(app):
        auth = {"authorization": f"Bearer {KEY}"}
        served = await client.post("/embed", json={"inputs": TEXT}, headers=auth)
        assert served.status_code == 200
        row_prefix = json.dumps(served.json()[0][0])[:FLOAT_DIGITS]
        errors = await _every_error(client)
        engine = app.state.registry.get("tiny-embed", "embed")
        gated = GatedBackend(engine)
        gated.fail_marker = engine.tokenizer.encode([TEXT], truncate=True)[0].ids[1]
        failed = await client.post("/embed", json={"inputs": [TEXT]}, headers=auth)
        assert failed.status_code == 500
        errors.append(failed)
        info = await client.get("/info", headers=auth)
        metrics = await client.get("/metrics")
    statuses = sorted({response.status_code for response in errors})
    assert statuses == [400, 401, 413, 422, 500], statuses
    logged = json_logs.getvalue()
    lines = [json.loads(line) for line in logged.splitlines()]
    assert any(line.get("status") == 500 for line in lines)  # the logs were captured, failures included
    assert "secret internal detail" in logged  # the model's exception is in the log...
    for response in errors:
        assert "secret internal detail" not in response.text  # ...never in a response
    answered = [response.text for response in [*errors, info, metrics]]
    for secret in (KEY, WRONG_KEY, TEXT, "Rilke", "ocelot"):
        assert secret not in logged, secret
        assert all(secret not in text for text in answered), secret
        assert all(secret not in str(response.headers) for response in errors), secret
    assert row_prefix not in logged
    access = [line for line in lines if line["logger"] == "bertserve.access"]
    answered_200 = [line for line in access if line["route"] == "/embed" and line["status"] == 200]
    assert answered_200
    assert all(line["api_key"] == 0 for line in answered_200)  # the key's position only
