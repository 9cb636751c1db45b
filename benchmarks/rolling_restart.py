"""Rolling restart behind haproxy under steady load: how many requests fail, per drain delay.

Starts a real redis-server, two bertserve replicas sharing it (the embedded embedder, memory+redis cache)
and a real haproxy with the shipped configuration (deploy/haproxy/haproxy.cfg: health checks on /ready),
all on free loopback ports. Sends steady closed-loop load through haproxy, restarts each replica in turn
with SIGTERM (waiting until haproxy sees the new process up before the next), and counts the requests
that did not get a 200. haproxy's retries are switched off by default (``--retries 0``): the plain setup,
where only the drain delay can keep requests from failing. tests/e2e/test_rolling.py runs the same
scenario and asserts that no request failed with the default delay.

    python -m benchmarks.rolling_restart                      # delays 0 and the default, retries 0
    python -m benchmarks.rolling_restart --delays 0 1 5 --retries 1
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.common import Process, free_port, print_table, start_process
from benchmarks.soak import start_redis
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
DEFAULT_DELAY_S = float(Settings.model_fields["shutdown_delay_s"].default)
#: Time for haproxy to take a replica that came back into rotation (rise 2 x inter 1 s, plus slack).
UP_TIMEOUT_S = 30


@dataclass
class Outcome:
    """One rolling restart: requests sent and how the unsuccessful ones ended."""

    delay_s: float
    retries: int
    requests: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    restarts: list[float] = field(default_factory=list)  # seconds from SIGTERM to up again, per replica


@dataclass
class Fleet:
    """Redis, two replicas and haproxy in front of them."""

    redis: Process
    ports: list[int]
    replicas: list[Process]
    haproxy: subprocess.Popen[bytes]
    url: str
    stats_url: str
    delay_s: float


def start_replica(port: int, redis_url: str, delay_s: float, home: Path | None) -> Process:
    """One bertserve replica on ``port``: the embedded embedder, sharing Redis."""
    argv = [
        *[sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)],
        *["--model", "minilm=builtin:all-minilm-l6-v2", "--log-level", "warning"],
        *["--cache", "memory+redis", "--redis-url", redis_url, "--shutdown-delay-s", str(delay_s)],
    ]
    env = {"BERTSERVE_HOME": str(home)} if home is not None else None
    return start_process(f"replica-{port}", argv, port, "/ready", env=env, timeout=300)


def start_haproxy(ports: list[int], retries: int) -> tuple[subprocess.Popen[bytes], str, str]:
    """haproxy in the foreground on the shipped config; returns it, its URL and its stats URL."""
    binary = shutil.which("haproxy")
    if binary is None:
        raise SystemExit("haproxy is missing (apt-get install haproxy)")
    listen, stats = free_port(), free_port()
    env = {
        **os.environ,
        "BERTSERVE_LISTEN": f"127.0.0.1:{listen}",
        "BERTSERVE_1": f"127.0.0.1:{ports[0]}",
        "BERTSERVE_2": f"127.0.0.1:{ports[1]}",
        "HAPROXY_RETRIES": str(retries),
        "HAPROXY_STATS": f"127.0.0.1:{stats}",
    }
    log = open("/tmp/bench-haproxy.log", "wb")  # noqa: SIM115 (the process owns it)
    process = subprocess.Popen(
        [binary, "-db", "-f", str(HAPROXY_CONFIG)], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    return process, f"http://127.0.0.1:{listen}", f"http://127.0.0.1:{stats}"


def server_states(stats_url: str) -> dict[str, str]:
    """haproxy's view of each replica (``UP``, ``DOWN``, ...), from its CSV stats."""
    text = httpx.get(f"{stats_url}/;csv", timeout=2).text.lstrip("# ")
    rows = csv.DictReader(io.StringIO(text))
    return {
        row["svname"]: row["status"] for row in rows if row["pxname"] == "bertserve" and row["check_status"]
    }


def wait_up(stats_url: str, server: str, timeout: float = UP_TIMEOUT_S) -> None:
    """Block until haproxy reports ``server`` UP."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if server_states(stats_url).get(server, "").startswith("UP"):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"haproxy never saw {server} up (log: /tmp/bench-haproxy.log)")


def start_fleet(delay_s: float, retries: int, home: Path | None = None) -> Fleet:
    """Everything up, and haproxy seeing both replicas up."""
    redis = start_redis()
    ports = [free_port(), free_port()]
    replicas = [start_replica(port, redis.url, delay_s, home) for port in ports]
    haproxy, url, stats_url = start_haproxy(ports, retries)
    fleet = Fleet(redis, ports, replicas, haproxy, url, stats_url, delay_s)
    for index in (1, 2):
        wait_up(stats_url, f"bertserve-{index}")
    return fleet


def stop_fleet(fleet: Fleet) -> None:
    """Stop every process the fleet started (second SIGTERM skips the replicas' drain delay)."""
    for replica in fleet.replicas:
        replica.process.send_signal(signal.SIGTERM)
        replica.process.send_signal(signal.SIGTERM)
    for process in (fleet.haproxy, *(r.process for r in fleet.replicas), fleet.redis.process):
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def roll(fleet: Fleet, home: Path | None) -> list[float]:
    """SIGTERM each replica in turn, start it again, wait until haproxy routes to it; seconds each."""
    took = []
    for index, port in enumerate(fleet.ports):
        started = time.monotonic()
        old = fleet.replicas[index]
        old.process.send_signal(signal.SIGTERM)
        old.process.wait(fleet.delay_s + 60)
        fleet.replicas[index] = start_replica(port, fleet.redis.url, fleet.delay_s, home)
        wait_up(fleet.stats_url, f"bertserve-{index + 1}")
        took.append(time.monotonic() - started)
    return took


async def _worker(client: httpx.AsyncClient, worker: int, stop: asyncio.Event, outcome: Outcome) -> None:
    sent = 0
    while not stop.is_set():
        sent += 1
        body = {"inputs": [f"rolling restart worker {worker} request {sent} keeps the replicas busy"]}
        try:
            response = await client.post("/embed", json=body)
            if response.status_code != 200:
                outcome.failures[str(response.status_code)] += 1
        except httpx.HTTPError as exc:
            outcome.failures[type(exc).__name__] += 1
        outcome.requests += 1


async def load_while_rolling(
    fleet: Fleet, outcome: Outcome, concurrency: int, home: Path | None, settle_s: float = 2.0
) -> None:
    """Steady closed-loop load through haproxy from before the first restart until after the last."""
    stop = asyncio.Event()
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=fleet.url, timeout=60) as client:
        workers = [asyncio.create_task(_worker(client, i, stop, outcome)) for i in range(concurrency)]
        try:
            await asyncio.sleep(settle_s)
            outcome.restarts = await asyncio.to_thread(roll, fleet, home)
            await asyncio.sleep(settle_s)
        finally:
            stop.set()
            await asyncio.gather(*workers)
    outcome.seconds = time.monotonic() - started


def run(delay_s: float, retries: int, concurrency: int = 4, home: Path | None = None) -> Outcome:
    """The whole scenario for one drain delay."""
    outcome = Outcome(delay_s, retries)
    fleet = start_fleet(delay_s, retries, home)
    try:
        asyncio.run(load_while_rolling(fleet, outcome, concurrency, home))
    finally:
        stop_fleet(fleet)
    return outcome


def main(argv: list[str] | None = None) -> int:
    """Run the scenario per delay and print one row each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", type=float, nargs="+", default=[0.0, DEFAULT_DELAY_S])
    parser.add_argument("--retries", type=int, default=0, help="haproxy retries on connection failures")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    rows = []
    for delay in args.delays:
        outcome = run(delay, args.retries, args.concurrency)
        failed = sum(outcome.failures.values())
        rows.append(
            [
                f"{delay:g}",
                args.retries,
                outcome.requests,
                failed,
                " ".join(f"{k}:{v}" for k, v in sorted(outcome.failures.items())) or "-",
                f"{outcome.seconds:.0f}",
                " / ".join(f"{s:.1f}" for s in outcome.restarts),
            ]
        )
    print_table(
        ["shutdown_delay_s", "retries", "requests", "failed", "by status", "seconds", "restart s (each)"],
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
