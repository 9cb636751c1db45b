"""The real app behind a real uvicorn server on a loopback port, in a thread of the test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from benchmarks.common import free_port
from service.app import create_app
from service.settings import Settings


@contextmanager
def live_server(settings: Settings, ready_timeout_s: float = 60.0) -> Iterator[str]:
    """Serve ``settings`` on 127.0.0.1 until the block ends; yields the base URL once /ready is 200."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, thread, ready_timeout_s)
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


def _wait_ready(url: str, thread: threading.Thread, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise AssertionError("the server thread ended before it was ready")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"server at {url} not ready after {timeout_s} s")
