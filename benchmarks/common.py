"""Shared benchmark pieces: real sentences, server processes, an async load generator, tables."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from models.runtime.builtins import default_home
from models.training.data import load_sts


def real_sentences(count: int, min_words: int = 5, max_words: int = 60, seed: int = 0) -> list[str]:
    """Distinct STS-B sentences of ``min_words`` to ``max_words`` words, shuffled with ``seed``."""
    seen: dict[str, None] = {}
    for split in ("train", "dev", "test"):
        for pair in load_sts(split, default_home()):
            for text in (pair.sentence1, pair.sentence2):
                if min_words <= len(text.split()) <= max_words:
                    seen.setdefault(text)
    sentences = list(seen)
    np.random.default_rng(seed).shuffle(sentences)
    return sentences[:count]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """A server process started by a benchmark."""

    name: str
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 30 s)."""
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_process(
    name: str,
    argv: list[str],
    port: int,
    ready_path: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> Process:
    """Start ``argv`` and wait until ``GET ready_path`` answers 200."""
    log = open(f"/tmp/bench-{name}.log", "wb")  # noqa: SIM115 (the process owns it)
    process = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited; see /tmp/bench-{name}.log")
        try:
            if httpx.get(url + ready_path, timeout=2).status_code == 200:
                return Process(name, url, process)
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{name} not ready in {timeout} s")


def start_bertserve(source: str, extra: Sequence[str] = ()) -> Process:
    """bertserve serving one embedder, named ``minilm``, with no result cache unless ``extra`` sets one
    (the load cycles through a fixed set of sentences: a cache would turn the run into a cache benchmark)."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "service",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--model",
        f"minilm={source}",
        "--log-level",
        "warning",
        "--cache",
        "none",
        *extra,  # later flags win
    ]
    return start_process("bertserve", argv, port, "/ready")


@dataclass
class LoadResult:
    """What one load run measured (latency percentiles in ms)."""

    requests: int
    sentences: int
    errors: int
    seconds: float
    p50: float
    p95: float
    p99: float
    #: Every request's latency (ms), so that runs from several processes merge exactly.
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return (self.requests - self.errors) / self.seconds

    @property
    def sps(self) -> float:
        """Sentences per second (successful requests only)."""
        return self.sentences / self.seconds


async def run_load(
    url: str,
    path: str,
    make_body: Callable[[list[str]], dict[str, object]],
    sentences: list[str],
    concurrency: int,
    per_request: int,
    max_requests: int,
    max_seconds: float,
) -> LoadResult:
    """``concurrency`` clients send requests of ``per_request`` sentences until a bound is hit."""

    def body_for(counter: int) -> dict[str, object]:
        offset = (counter * per_request) % (len(sentences) - per_request)
        return make_body(sentences[offset : offset + per_request])

    return await run_bodies(url, path, body_for, per_request, concurrency, max_requests, max_seconds)


async def run_bodies(
    url: str,
    path: str,
    body_for: Callable[[int], dict[str, object]],
    per_request: int,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
) -> LoadResult:
    """Closed-loop load: request number ``i`` sends ``body_for(i)``; stops at a count or time bound."""
    counter = 0
    done_sentences = errors = 0
    latencies: list[float] = []
    started = time.perf_counter()
    stop_at = started + max_seconds

    async def worker() -> None:
        # One client (one connection) per worker: a shared pool of 64 connections makes httpx itself
        # the bottleneck (its pool bookkeeping grows with the connection count).
        nonlocal counter, done_sentences, errors
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            while counter < max_requests and time.perf_counter() < stop_at:
                body = body_for(counter)
                counter += 1
                sent = time.perf_counter()
                response = await client.post(path, json=body)
                latencies.append((time.perf_counter() - sent) * 1000)
                if response.status_code == 200:
                    done_sentences += per_request
                else:
                    errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    p50, p95, p99 = (float(np.percentile(latencies, q)) for q in (50, 95, 99))
    return LoadResult(len(latencies), done_sentences, errors, seconds, p50, p95, p99, latencies)


_WRK_SCRIPT = """
local bodies = {%s}
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "%s", {["Content-Type"] = "application/json"}, bodies[(counter %% #bodies) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("WRK %%d %%d %%d %%f %%f %%f\\n", summary.requests, summary.duration,
    summary.errors.status + summary.errors.timeout + summary.errors.connect + summary.errors.read,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


def run_wrk(
    url: str, path: str, bodies: list[str], per_request: int, concurrency: int, seconds: float
) -> LoadResult:
    """The same closed-loop load from wrk (C, one thread): the client costs next to no CPU."""
    lua = ",".join("[==[" + body + "]==]" for body in bodies)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT % (lua, path))
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                f"-d{max(int(seconds), 1)}s",
                "--timeout",
                "60s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 120,
        ).stdout
    finally:
        os.unlink(script.name)
    line = next(row for row in out.splitlines() if row.startswith("WRK "))
    requests, micros, errors, p50, p95, p99 = (float(x) for x in line.split()[1:])
    done = int(requests) - int(errors)
    return LoadResult(int(requests), done * per_request, int(errors), micros / 1e6, p50, p95, p99)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], header: bool = True) -> None:
    """Print a Markdown table (or only its rows, to stream a long table)."""
    if header:
        print("| " + " | ".join(headers) + " |")
        print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row) + " |")
    sys.stdout.flush()
