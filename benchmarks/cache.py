"""Result cache: server time of hits (memory, Redis) against misses, and throughput by hit ratio.

    python -m benchmarks.cache [--seconds 10]

Server time is the response's ``x-total-time`` header (handler start to response), sequential requests
of one real STS-B sentence. Throughput: the batching benchmark's workload (httpx, concurrency 64, one
sentence per request) where a share of requests repeats a warmed set of sentences and the rest are unique.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import time

import httpx
import numpy as np

from benchmarks.common import (
    free_port,
    print_table,
    real_sentences,
    run_bodies,
    run_wrk,
    start_bertserve,
)

MODEL = "builtin:all-minilm-l6-v2"


def server_times(url: str, texts: list[str]) -> tuple[float, float]:
    """p50 of x-total-time and of the client-side latency (ms) for one request per text."""
    server, client = [], []
    with httpx.Client(base_url=url, timeout=30) as http:
        for text in texts:
            started = time.perf_counter()
            response = http.post("/embed", json={"inputs": [text]})
            client.append((time.perf_counter() - started) * 1000)
            server.append(float(response.headers["x-total-time"]))
    return float(np.median(server)), float(np.median(client))


def latency_rows(sentences: list[str], redis_url: str) -> list[list[object]]:
    """Miss and hit rows for the memory tier and for the Redis tier alone."""
    rows: list[list[object]] = []
    for tier, extra in (
        ("memory", ["--cache", "memory"]),
        ("redis", ["--cache", "redis", "--redis-url", redis_url]),
    ):
        server = start_bertserve(MODEL, extra)
        try:
            sample = [f"{text} ({tier})" for text in sentences[:300]]
            miss = server_times(server.url, sample)
            time.sleep(0.5)  # let write-behind to Redis finish
            hit = server_times(server.url, sample)
        finally:
            server.stop()
        rows.append([tier, "miss", f"{miss[0]:.3f}", f"{miss[1]:.3f}"])
        rows.append([tier, "hit", f"{hit[0]:.3f}", f"{hit[1]:.3f}"])
    return rows


def throughput_rows(sentences: list[str], seconds: float) -> list[list[object]]:
    """req/s and latency at 0%, 50% and 90% hit ratio on one server with the memory tier."""
    warm = sentences[:200]
    rows: list[list[object]] = []
    server = start_bertserve(MODEL, ["--cache", "memory"])
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for start in range(0, len(warm), 50):
                http.post("/embed", json={"inputs": warm[start : start + 50]})
        for ratio in (0.0, 0.5, 0.9):

            def body_for(i: int, ratio: float = ratio) -> dict[str, object]:
                if (i * 7919) % 100 < ratio * 100:
                    return {"inputs": [warm[i % len(warm)]]}
                return {"inputs": [f"{sentences[200 + i % (len(sentences) - 200)]} #{ratio}-{i}"]}

            result = asyncio.run(run_bodies(server.url, "/embed", body_for, 1, 64, 50_000, seconds))
            rows.append([f"{ratio:.0%}", "httpx", result.rps, result.p50, result.p99, result.errors])
            # wrk cycles through a fixed list: 60,000 bodies so that "unique" ones never come round.
            bodies = [json.dumps(body_for(i + 10**6)) for i in range(60_000)]
            result = run_wrk(server.url, "/embed", bodies, 1, 64, seconds)
            rows.append([f"{ratio:.0%}", "wrk", result.rps, result.p50, result.p99, result.errors])
    finally:
        server.stop()
    base = {row[1]: float(row[2]) for row in rows if row[0] == "0%"}
    for row in rows:
        row.append(f"{float(row[2]) / base[row[1]]:.2f}x")
    return rows


def main() -> None:
    """Run both parts and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput point")
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is needed (apt-get install redis-server)")
    port = free_port()
    redis = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        sentences = real_sentences(2000)
        print_table(
            ["tier", "request", "server p50 ms (x-total-time)", "client p50 ms"],
            latency_rows(sentences, f"redis://127.0.0.1:{port}/0"),
        )
        print()
        print_table(
            ["hit ratio", "client", "req/s", "p50 ms", "p99 ms", "errors", "vs 0% (same client)"],
            throughput_rows(sentences, args.seconds),
        )
    finally:
        redis.kill()
        redis.wait()


if __name__ == "__main__":
    main()
