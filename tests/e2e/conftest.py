"""A real bertserve server process on the embedded default models."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from benchmarks.common import free_port
from models.runtime.builtins import default_home

#: With an empty data directory the first start fine-tunes the default classifier and reranker: 5-6
#: minutes on a 2-core Zen 5, over 15 on a 2-core 2.0 GHz Xeon (seen); later starts take seconds.
READY_TIMEOUT_S = 1800


@dataclass
class Server:
    """A running server: its base URL, data directory and process."""

    url: str
    home: Path
    process: subprocess.Popen[bytes]
    log: Path


def start_server(args: list[str], home: Path, log: Path, launcher: list[str] | None = None) -> Server:
    """Start ``python -m service`` (or ``launcher``, a command taking the same arguments) with ``args`` on
    a free loopback port."""
    port = free_port()
    # No drain delay unless a test asks (--shutdown-delay-s): no balancer routes to a test's server.
    env = {
        **os.environ,
        "BERTSERVE_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "BERTSERVE_SHUTDOWN_DELAY_S": "0",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(launcher or [sys.executable, "-m", "service"]),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return Server(f"http://127.0.0.1:{port}", home, process, log)


def wait_ready(server: Server, timeout: float) -> None:
    """Poll /ready until 200; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"server exited with {server.process.returncode}:\n{server.log.read_text()}")
        try:
            if httpx.get(f"{server.url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"server not ready after {timeout} s:\n{server.log.read_text()[-4000:]}")


def stop_server(server: Server) -> None:
    """SIGTERM, then SIGKILL if it does not exit."""
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def home() -> Path:
    """Data directory shared with the developer's own (so the classifier is built once)."""
    path = default_home()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def server(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The default serve command, as a user runs it: both embedded models."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    running = start_server([], home, log)
    try:
        wait_ready(running, READY_TIMEOUT_S)
        yield running
    finally:
        stop_server(running)
