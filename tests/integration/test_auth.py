"""API keys and the per-key rate limit, through the real app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.settings import Settings
from tests.integration.conftest import started_client

pytestmark = pytest.mark.integration

KEY, OTHER = "sk-first-key-123", "sk-second-key-456"


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_keys_guard_every_route_but_the_open_ones(
    make_settings: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# team keys\n\n{OTHER}\n")
    app = create_app(make_settings(api_keys=[KEY], api_keys_file=keys_file))
    async for client in started_client(app):
        missing = await client.post("/embed", json={"inputs": "x"})
        assert missing.status_code == 401
        assert missing.json() == {"error": "missing or invalid API key", "error_type": "unauthorized"}
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await client.post("/embed", json={"inputs": "x"}, headers=bearer(KEY + "x"))
        assert wrong.status_code == 401
        assert (
            await client.post("/embed", json={"inputs": "x"}, headers={"authorization": KEY})
        ).status_code == 401
        for key in (KEY, OTHER):
            assert (await client.post("/embed", json={"inputs": "x"}, headers=bearer(key))).status_code == 200
        openai = await client.post("/v1/embeddings", json={"input": "x", "model": "tiny-embed"})
        assert openai.status_code == 401
        assert openai.json()["error"]["code"] == "unauthorized"
        assert openai.json()["error"]["type"] == "invalid_request_error"
        for path in ("/health", "/ready", "/metrics"):
            assert (await client.get(path)).status_code == 200
        assert (await client.get("/info")).status_code == 401
    assert KEY not in capsys.readouterr().err
    assert KEY not in repr(make_settings(api_keys=[KEY]))


async def test_open_paths_are_configurable(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(api_keys=[KEY], auth_open_paths=["/health"]))
    async for client in started_client(app):
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/metrics")).status_code == 401


async def test_no_keys_means_open(client: httpx.AsyncClient) -> None:
    assert (await client.post("/embed", json={"inputs": "x"})).status_code == 200


async def test_rate_limit_per_key(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(api_keys=[KEY, OTHER], rate_limit_rps=0.5, rate_limit_burst=3))
    async for client in started_client(app):
        statuses = [
            (await client.post("/embed", json={"inputs": "x"}, headers=bearer(KEY))).status_code
            for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        limited = await client.post("/embed", json={"inputs": "x"}, headers=bearer(KEY))
        assert limited.json()["error_type"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        openai = await client.post(
            "/v1/embeddings", json={"input": "x", "model": "tiny-embed"}, headers=bearer(KEY)
        )
        assert openai.status_code == 429
        assert openai.json()["error"]["type"] == "rate_limit_error"  # as the handler's 429 (overloaded)
        assert (await client.post("/embed", json={"inputs": "x"}, headers=bearer(OTHER))).status_code == 200


def test_missing_keys_file_is_refused(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        make_settings(api_keys_file=tmp_path / "absent")


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/embed", headers={"origin": "https://app.example", "access-control-request-method": "POST"}
    )
    assert "access-control-allow-origin" not in response.headers


async def test_cors_allows_configured_origins_before_the_key_check(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(cors_origins=["https://app.example"], api_keys=[KEY]))
    async for client in started_client(app):
        preflight = await client.options(
            "/embed",
            headers={
                "origin": "https://app.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        other = await client.options(
            "/embed", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
        )
        assert "access-control-allow-origin" not in other.headers
        served = await client.post(
            "/embed", json={"inputs": "x"}, headers={**bearer(KEY), "origin": "https://app.example"}
        )
        assert served.status_code == 200
        assert served.headers["access-control-allow-origin"] == "https://app.example"
