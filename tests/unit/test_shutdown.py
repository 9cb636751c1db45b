"""The drain delay's signal handling on a real uvicorn server object (not started): the first SIGTERM
starts the delay, a second one or an unready server stops at once."""

from __future__ import annotations

import signal
import time

import pytest
import uvicorn

from service.shutdown import DrainingServer

pytestmark = pytest.mark.unit


def _server(delay_s: float, ready: bool, calls: list[str]) -> DrainingServer:
    def start_draining() -> bool:
        calls.append("drain")
        return ready

    return DrainingServer(uvicorn.Config(app=None), delay_s, start_draining)  # type: ignore[arg-type]


def test_first_sigterm_delays_the_stop() -> None:
    calls: list[str] = []
    server = _server(0.3, ready=True, calls=calls)
    server.handle_exit(signal.SIGTERM, None)
    assert calls == ["drain"]
    assert not server.should_exit, "stopped before the drain delay"
    deadline = time.monotonic() + 5
    while not server.should_exit and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.should_exit


def test_second_signal_stops_at_once() -> None:
    calls: list[str] = []
    server = _server(60, ready=True, calls=calls)
    server.handle_exit(signal.SIGTERM, None)
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit
    assert calls == ["drain"]


def test_no_delay_while_not_ready_or_when_switched_off() -> None:
    calls: list[str] = []
    loading = _server(60, ready=False, calls=calls)
    loading.handle_exit(signal.SIGTERM, None)
    assert loading.should_exit
    off = _server(0, ready=True, calls=calls)
    off.handle_exit(signal.SIGINT, None)
    assert off.should_exit
    assert calls == ["drain"], "a zero delay never marks the registry draining"
