"""Two real server processes on the real model share one real Redis."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import start_server, stop_server, wait_ready
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e

TEXTS = ["Replicas share what one of them computed.", "Redis is the shared tier.", "A third text."]


def test_replicas_share_redis(home: Path, redis_server: RedisServer, tmp_path: Path) -> None:
    args = ["--model", "minilm=builtin:all-minilm-l6-v2", "--cache", "redis", "--redis-url", redis_server.url]
    first = start_server(args, home, tmp_path / "first.log")
    second = start_server(args, home, tmp_path / "second.log")
    try:
        wait_ready(first, 120)
        wait_ready(second, 120)
        computed = httpx.post(f"{first.url}/embed", json={"inputs": TEXTS}, timeout=30)
        assert int(computed.headers["x-compute-tokens"]) > 0
        time.sleep(0.3)  # the write to Redis is behind the response
        shared = httpx.post(f"{second.url}/embed", json={"inputs": TEXTS}, timeout=30)
        assert shared.headers["x-compute-tokens"] == "0"
        assert shared.json() == computed.json()
        metrics = httpx.get(f"{second.url}/metrics").text
        assert 'bertserve_cache_hits_total{tier="redis"} 3.0' in metrics
    finally:
        stop_server(first)
        stop_server(second)
