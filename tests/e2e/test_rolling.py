"""Rolling restart of two replicas sharing Redis behind a real haproxy (the shipped config, health checks
on /ready, retries off) under steady load: with the default drain delay, not one request fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.rolling_restart import DEFAULT_DELAY_S, run
from tests.redis_server import require_binary

pytestmark = pytest.mark.e2e


def test_rolling_restart_behind_haproxy_loses_no_request(home: Path) -> None:
    require_binary("haproxy")
    require_binary("redis-server")
    outcome = run(DEFAULT_DELAY_S, retries=0, concurrency=4, home=home)
    assert outcome.requests > 200, f"too little load to show anything: {outcome}"
    assert not outcome.failures, f"{sum(outcome.failures.values())} of {outcome.requests} failed: {outcome}"
    assert len(outcome.restarts) == 2
