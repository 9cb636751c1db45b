"""SIGTERM: the server leaves the balancer's rotation (/ready 503) while serving for its drain delay, then
stops accepting, finishes what is in flight, and exits in its grace period."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import start_server, stop_server, wait_ready

pytestmark = pytest.mark.e2e


async def _in_flight_then_sigterm(url: str, process_signal: object) -> list[int]:
    texts = [f"request {i} sentence {j} about graceful shutdown" for i in range(8) for j in range(64)]
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        requests = [
            asyncio.ensure_future(client.post("/embed", json={"inputs": texts[i * 64 : (i + 1) * 64]}))
            for i in range(8)
        ]
        await asyncio.sleep(0.3)  # all eight are inside the server now, most still queued
        assert callable(process_signal)
        process_signal()
        responses = await asyncio.gather(*requests)
    return [response.status_code for response in responses]


def test_sigterm_finishes_in_flight_requests(home: Path, tmp_path: Path) -> None:
    server = start_server(
        ["--model", "m=builtin:all-minilm-l6-v2", "--cache", "none", "--shutdown-grace-s", "20"],
        home,
        tmp_path / "server.log",
    )
    try:
        wait_ready(server, 120)
        started = time.monotonic()
        statuses = asyncio.run(
            _in_flight_then_sigterm(server.url, lambda: server.process.send_signal(signal.SIGTERM))
        )
        assert statuses == [200] * 8
        # uvicorn re-raises the signal once it has drained, so the exit status says "ended by SIGTERM".
        assert server.process.wait(timeout=25) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 25
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/health", timeout=2)
    finally:
        if server.process.poll() is None:
            stop_server(server)


async def _overload_then_sigterm(url: str, process_signal: object, requests: int) -> list[int | str]:
    words = ["graceful", "shutdown", "cuts", "long", "work", "at", "its", "grace", "period"]
    texts = [" ".join(words[(i + j) % len(words)] for j in range(200)) for i in range(64)]
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        pending = [
            asyncio.ensure_future(client.post("/embed", json={"inputs": [f"{i} {t}" for t in texts]}))
            for i in range(requests)
        ]
        await asyncio.sleep(1.0)  # queued: far more work than the grace period allows
        assert callable(process_signal)
        process_signal()
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
    return [o.status_code if isinstance(o, httpx.Response) else type(o).__name__ for o in outcomes]


def test_sigterm_exits_within_the_grace_period(home: Path, tmp_path: Path) -> None:
    grace = 2.0
    server = start_server(
        [
            *["--model", "m=builtin:all-minilm-l6-v2", "--cache", "none"],
            *["--shutdown-grace-s", str(grace), "--request-timeout-s", "300"],
            *["--max-queue-tokens", "10000000", "--max-concurrent-requests", "1000"],
        ],
        home,
        tmp_path / "server.log",
    )
    try:
        wait_ready(server, 120)
        signalled: list[float] = []

        def sigterm() -> None:
            signalled.append(time.monotonic())
            server.process.send_signal(signal.SIGTERM)

        outcomes = asyncio.run(_overload_then_sigterm(server.url, sigterm, requests=24))
        server.process.wait(timeout=60)
        took = time.monotonic() - signalled[0]
        # The grace period, plus the batch already inside the model and the process's own exit.
        assert took < grace + 6, f"exited {took:.1f} s after SIGTERM with a {grace} s grace period"
        assert outcomes.count(200) < len(outcomes), "all work finished: the test did not overload"
        log = server.log.read_text()
        assert "timeout graceful shutdown exceeded" in log
    finally:
        if server.process.poll() is None:
            stop_server(server)


def test_sigterm_drain_delay_answers_unready_while_serving(home: Path, tmp_path: Path) -> None:
    delay = 3.0
    server = start_server(
        ["--model", "m=builtin:all-minilm-l6-v2", "--cache", "none", "--shutdown-delay-s", str(delay)],
        home,
        tmp_path / "server.log",
    )
    try:
        wait_ready(server, 120)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        ready = httpx.get(f"{server.url}/ready", timeout=5)
        assert (ready.status_code, ready.json()["error_type"]) == (503, "draining")
        served = 0
        while time.monotonic() - signalled < delay - 0.5:  # new connections still get answers
            response = httpx.post(f"{server.url}/embed", json={"inputs": ["draining"]}, timeout=5)
            assert response.status_code == 200
            served += 1
        assert served > 0
        assert server.process.wait(timeout=delay + 10) in (0, -signal.SIGTERM)
        took = time.monotonic() - signalled
        assert delay <= took < delay + 8, f"exited {took:.1f} s after SIGTERM with a {delay} s delay"
    finally:
        if server.process.poll() is None:
            stop_server(server)


def test_second_sigterm_skips_the_drain_delay(home: Path, tmp_path: Path) -> None:
    server = start_server(
        ["--model", "m=builtin:all-minilm-l6-v2", "--cache", "none", "--shutdown-delay-s", "60"],
        home,
        tmp_path / "server.log",
    )
    try:
        wait_ready(server, 120)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.process.poll() is None, "stopped at once despite the 60 s delay"
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=15)
        assert time.monotonic() - signalled < 10
    finally:
        if server.process.poll() is None:
            stop_server(server)
