"""Soak test: the real server under steady open-loop load for minutes; not part of the test suite.

Starts a real redis-server (free loopback port) and ``python -m service`` on the default models with
the memory+redis cache, measures capacity in a short closed-loop calibration, then sends a mixed load
(embed and classify, repeated and unique texts, some oversize and invalid requests) as Poisson arrivals
at ~80% of that capacity. Prints one row per minute (requests, statuses, latency percentiles of the
served requests, server RSS) and verdicts: no 5xx (nor client-side transport errors), RSS growth
after warm-up under 10%, p99 of the last minute within 1.5x of the first minute after warm-up. Exit
status 1 if a verdict fails.

The load generator runs on the same machine as the server, spread over several small httpx clients
(one big client's pool becomes the bottleneck after a latency spike); the server's own time per request
(its x-total-time header) is reported beside the client's. The server's in-process cache is bounded to
16 MiB so that it is full by the end of the warm-up: RSS growth after it means a leak.

    python -m benchmarks.soak                     # 10 minutes at 80% of measured capacity
    python -m benchmarks.soak --minutes 2 --rate 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from benchmarks.common import Process, free_port, print_table, real_sentences, start_process

#: Share of each kind of request in the mix (the rest are valid embed / classify requests).
OVERSIZE_SHARE = 0.03
INVALID_SHARE = 0.04
CLASSIFY_SHARE = 0.35
REPEATED_SHARE = 0.5
HOT_TEXTS = 200
#: httpx clients the open-loop generator spreads its requests over (see ``soak``).
CLIENTS = 16
#: The server's in-process cache bound: small, so that it is full by the end of the warm-up and RSS
#: growth after it means a leak, not the cache filling up to its (default 256 MiB) bound.
SOAK_CACHE_BYTES = 16 * 1024 * 1024


@dataclass
class Minute:
    """What one minute of the soak saw (by the minute a request was sent in)."""

    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        """Latency percentile of the served (200) requests, in ms."""
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def server_percentile(self, q: float) -> float:
        """Percentile of the server's own time (its ``x-total-time`` header) for served requests, in ms."""
        return float(np.percentile(self.server_ms, q)) if self.server_ms else float("nan")


class Mix:
    """Request bodies of the soak mix, drawn with a fixed seed."""

    def __init__(self, sentences: list[str], seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.hot = sentences[:HOT_TEXTS]
        self.cold = sentences[HOT_TEXTS:]
        self.counter = 0

    def _texts(self, count: int) -> list[str]:
        texts = []
        for _ in range(count):
            self.counter += 1
            if self.rng.random() < REPEATED_SHARE:
                texts.append(self.hot[int(self.rng.integers(len(self.hot)))])
            else:  # unique: a cache miss everywhere
                texts.append(f"{self.cold[self.counter % len(self.cold)]} #{self.counter}")
        return texts

    def next(self, valid_only: bool = False) -> tuple[str, bytes]:
        """(path, JSON body) of the next request."""
        roll = 1.0 if valid_only else self.rng.random()
        if roll < OVERSIZE_SHARE:
            if self.rng.random() < 0.5:
                return "/embed", _json({"inputs": ["too many"] * 300})  # over max_client_batch_size
            return "/classify", _json({"inputs": "x" * 100_001})  # over max_input_chars
        if roll < OVERSIZE_SHARE + INVALID_SHARE:
            choice = int(self.rng.integers(3))
            return "/embed", [
                b'{"inputs": ["unterminated',
                b'{"inputs": 5}',
                b'{"inputs": "a", "model": "nope"}',
            ][choice]
        if self.rng.random() < CLASSIFY_SHARE:
            return "/classify", _json({"inputs": self._texts(int(self.rng.integers(1, 5)))})
        return "/embed", _json({"inputs": self._texts(int(self.rng.integers(1, 9)))})


def _json(body: object) -> bytes:
    return json.dumps(body).encode()


async def send(client: httpx.AsyncClient, path: str, body: bytes) -> tuple[str, float, float]:
    """Status (or the transport error's name), client latency and server time (ms) of one request."""
    started = time.perf_counter()
    server_ms = float("nan")
    try:
        response = await client.post(path, content=body, headers={"content-type": "application/json"})
        status = str(response.status_code)
        server_ms = float(response.headers.get("x-total-time", "nan"))
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return status, (time.perf_counter() - started) * 1000, server_ms


async def calibrate(url: str, mix: Mix, seconds: float, concurrency: int) -> float:
    """Closed-loop capacity in valid requests per second of the mix."""
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            status, _, _ = await send(client, *mix.next(valid_only=True))
            done += status == "200"

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=_limits()) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


def _limits() -> httpx.Limits:
    # Idle connections are closed by the client before uvicorn's 5 s keep-alive timeout, so that a
    # request never races the server closing its connection (a client-side ReadError, not a fault).
    return httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=2.0)


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def soak(url: str, pid: int, mix: Mix, rate: float, minutes: int, seed: int) -> list[Minute]:
    """Open-loop Poisson arrivals at ``rate`` per second for ``minutes``; per-minute results."""
    rng = np.random.default_rng(seed + 1)
    results: defaultdict[int, Minute] = defaultdict(Minute)
    started = time.perf_counter()
    end = started + minutes * 60
    pending: set[asyncio.Task[None]] = set()

    async def one(client: httpx.AsyncClient, minute: int, path: str, body: bytes) -> None:
        status, latency, server_ms = await send(client, path, body)
        results[minute].statuses[status] += 1
        if status == "200":
            results[minute].latencies_ms.append(latency)
            results[minute].server_ms.append(server_ms)

    async def sample_rss() -> None:
        while time.perf_counter() < end:
            results[int((time.perf_counter() - started) // 60)].rss_mb.append(rss_mb(pid))
            await asyncio.sleep(5)

    async with contextlib.AsyncExitStack() as stack:
        # Several small clients, not one with a big pool: an httpx pool's bookkeeping per request
        # grows with its connection count, so one shared client becomes the bottleneck once a
        # latency spike opens many connections, and the generator, not the server, sets the latency.
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=60, limits=_limits()))
            for _ in range(CLIENTS)
        ]
        sampler = asyncio.ensure_future(sample_rss())
        next_at = started
        sent = 0
        while next_at < end:
            next_at += float(rng.exponential(1 / rate))
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            sent += 1
            client = clients[sent % CLIENTS]
            task = asyncio.ensure_future(one(client, int((next_at - started) // 60), *mix.next()))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending, sampler)
    return [results[m] for m in range(minutes)]


def report(minutes: list[Minute], warmup: int) -> bool:
    """Print the per-minute table and the verdicts; True if all pass."""
    codes = sorted({code for minute in minutes for code in minute.statuses})
    headers = ["minute", "requests", *codes, "p50 ms", "p95 ms", "p99 ms", "server p99 ms", "RSS MB"]
    rows = []
    for number, minute in enumerate(minutes, 1):
        counts = [minute.statuses.get(code, 0) for code in codes]
        last_rss = minute.rss_mb[-1] if minute.rss_mb else float("nan")
        latency = [minute.percentile(q) for q in (50, 95, 99)]
        rows.append([number, sum(counts), *counts, *latency, minute.server_percentile(99), last_rss])
    print_table(headers, rows)
    server_errors = sum(n for m in minutes for code, n in m.statuses.items() if code.startswith("5"))
    transport = sum(n for m in minutes for code, n in m.statuses.items() if not code[0].isdigit())
    warm_rss = minutes[warmup - 1].rss_mb[-1] if warmup else minutes[0].rss_mb[0]
    growth = minutes[-1].rss_mb[-1] / warm_rss - 1
    first_p99, last_p99 = minutes[min(warmup, len(minutes) - 1)].percentile(99), minutes[-1].percentile(99)
    verdicts = [
        (server_errors == 0, f"no 5xx: {server_errors}"),
        (transport == 0, f"no transport errors (timeouts, resets) on the client side: {transport}"),
        (
            growth < 0.10,
            f"RSS growth after warm-up {growth:+.1%} (limit +10%): {warm_rss:.0f} MB -> "
            f"{minutes[-1].rss_mb[-1]:.0f} MB",
        ),
        (
            last_p99 <= 1.5 * first_p99,
            f"p99 stable: last minute {last_p99:.1f} ms vs first after warm-up "
            f"{first_p99:.1f} ms (limit 1.5x)"
            + (" [one minute after warm-up: compared with itself]" if warmup >= len(minutes) - 1 else ""),
        ),
    ]
    for ok, text in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    return all(ok for ok, _ in verdicts)


def start_redis() -> Process:
    """A real redis-server on a free loopback port (no persistence), once it answers PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing (apt-get install redis-server)")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return Process("redis", f"redis://127.0.0.1:{port}/0", process)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("redis-server did not start")


def start_bertserve_defaults(redis_url: str) -> Process:
    """bertserve on its default models (embedder and classifier) with the memory+redis cache."""
    port = free_port()
    argv = [
        *[sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)],
        *["--log-level", "warning", "--cache", "memory+redis", "--redis-url", redis_url],
        *["--cache-max-bytes", str(SOAK_CACHE_BYTES)],
    ]
    return start_process("soak-bertserve", argv, port, "/ready", timeout=900)


def main(argv: list[str] | None = None) -> int:
    """Parse flags, start the servers, calibrate, soak, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10, help="length of the soak (default 10)")
    parser.add_argument("--rate", type=float, default=None, help="requests/s; default 80%% of capacity")
    parser.add_argument("--load", type=float, default=0.8, help="share of capacity when --rate is not set")
    parser.add_argument("--calibrate-seconds", type=float, default=20.0)
    parser.add_argument("--warmup-minutes", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 <= args.warmup_minutes < args.minutes:
        parser.error("--warmup-minutes must be shorter than --minutes")
    mix = Mix(real_sentences(5000, min_words=3), args.seed)
    redis = start_redis()
    server = start_bertserve_defaults(redis.url)
    try:
        rate = args.rate
        if rate is None:
            capacity = asyncio.run(calibrate(server.url, mix, args.calibrate_seconds, concurrency=16))
            rate = args.load * capacity
            print(f"calibration: {capacity:.1f} valid requests/s closed-loop; soak at {rate:.1f}/s")
        pid = server.process.pid
        print(f"soak: {args.minutes} min of Poisson arrivals at {rate:.1f} requests/s (server pid {pid})\n")
        minutes = asyncio.run(soak(server.url, pid, mix, rate, args.minutes, args.seed))
    finally:
        server.stop()
        redis.stop()
    return 0 if report(minutes, args.warmup_minutes) else 1


if __name__ == "__main__":
    sys.exit(main())
