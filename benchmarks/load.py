"""Served throughput and latency of bertserve (and Infinity, side by side) against an in-process baseline.

    python -m benchmarks.load [--infinity] [--sweep] [--seconds 15]

All servers run on loopback, one at a time, with the same real STS-B sentences (5-60 words); every load
point is bounded in requests and seconds. Ratios are measured in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import (
    LoadResult,
    Process,
    free_port,
    print_table,
    real_sentences,
    run_load,
    start_bertserve,
    start_process,
)
from models.defaults import minilm_path
from models.loading import describe_model
from models.runtime import TorchBackend
from models.tokenization import TextTokenizer

#: This machine kind: ~180 GFLOP/s float32 on 2 threads; all-MiniLM-L6-v2: ~21.5 MFLOP per token.
MACHINE_FLOPS = 180e9
MODEL_FLOPS_PER_TOKEN = 21.5e6
INFINITY = Path("~/.cache/peers/infinity/bin/infinity_emb").expanduser()


def in_process_baseline(sentences: list[str]) -> tuple[list[tuple[int, float]], float, float]:
    """Sentences/s per batch size (length-sorted batches), p50 ms of one sentence, mean tokens."""
    torch.set_num_threads(os.cpu_count() or 1)
    description = describe_model(minilm_path())
    tokenizer = TextTokenizer.from_folder(minilm_path(), description.max_input_tokens)
    backend = TorchBackend(description, "cpu", "float32")
    items = sorted(tokenizer.encode(sentences, truncate=True), key=lambda item: item.tokens)
    backend.forward(tokenizer.collate(items[:8]))
    rates = []
    for size in (1, 8, 16, 32, 64):
        started = time.perf_counter()
        for start in range(0, len(items), size):
            backend.forward(tokenizer.collate(items[start : start + size]))
        rates.append((size, len(items) / (time.perf_counter() - started)))
    single = []
    for text in sentences[:100]:
        started = time.perf_counter()
        backend.forward(tokenizer.collate(tokenizer.encode([text], truncate=True)))
        single.append((time.perf_counter() - started) * 1000)
    mean_tokens = float(np.mean([item.tokens for item in items]))
    return rates, float(np.median(single)), mean_tokens


def start_infinity() -> Process:
    """Infinity 0.0.78, torch engine, default settings (see shared/peers/infinity.md)."""
    port = free_port()
    argv = [
        str(INFINITY),
        "v2",
        "--model-id",
        str(minilm_path()),
        "--served-model-name",
        "minilm",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--engine",
        "torch",
        "--device",
        "cpu",
    ]
    env = {"DO_NOT_TRACK": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    return start_process("infinity", argv, port, "/health", env=env, timeout=600)


def _tei_body(batch: list[str]) -> dict[str, object]:
    return {"inputs": batch}


def _openai_body(batch: list[str]) -> dict[str, object]:
    return {"model": "minilm", "input": batch}


def load_point(
    server: Process, sentences: list[str], concurrency: int, per_request: int, seconds: float
) -> LoadResult:
    """One bounded load run against ``server``."""
    path, body = ("/embed", _tei_body) if server.name == "bertserve" else ("/embeddings", _openai_body)
    return asyncio.run(
        run_load(
            server.url,
            path,
            body,
            sentences,
            concurrency,
            per_request,
            max_requests=20_000,
            max_seconds=seconds,
        )
    )


def _row(label: str, c: int, n: int, result: LoadResult, limit: float) -> list[object]:
    return [
        label,
        c,
        n,
        result.rps,
        result.sps,
        result.percentile(50),
        result.percentile(95),
        result.percentile(99),
        result.errors,
        f"{result.sps / limit:.0%}",
    ]


HEADERS = [
    "server",
    "concurrency",
    "sentences/req",
    "req/s",
    "sentences/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "errors",
    "of compute limit",
]


def main() -> None:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0, help="per load point")
    parser.add_argument("--infinity", action="store_true", help="also measure Infinity (torch)")
    parser.add_argument("--sweep", action="store_true", help="sweep max_batch_tokens")
    args = parser.parse_args()
    sentences = real_sentences(2000)
    rates, single_ms, mean_tokens = in_process_baseline(sentences[:512])
    limit = MACHINE_FLOPS / (MODEL_FLOPS_PER_TOKEN * mean_tokens)
    best = max(rate for _, rate in rates)
    print(f"\nsentences: {len(sentences)}, mean tokens {mean_tokens:.1f}, compute limit {limit:.0f}/s")
    print_table(["in-process batch size", "sentences/s"], [[b, r] for b, r in rates])
    print(f"direct single-sentence call p50: {single_ms:.2f} ms\n")
    points = [(1, 1), (16, 1), (64, 1), (1, 32), (16, 32), (64, 32)]
    servers = [("bertserve", lambda: start_bertserve("builtin:all-minilm-l6-v2"))]
    if args.infinity:
        servers.append(("infinity", start_infinity))
    results: dict[tuple[str, int, int], LoadResult] = {}
    rows = []
    for name, start in servers:
        server = start()
        try:
            for c, n in points:
                results[name, c, n] = load_point(server, sentences, c, n, args.seconds)
                rows.append(_row(name, c, n, results[name, c, n], limit))
        finally:
            server.stop()
    print_table(HEADERS, rows)
    ours = results["bertserve", 64, 1]
    print(
        f"\nbertserve c64x1: {ours.sps:.1f} sentences/s = {ours.sps / best:.0%} of the best in-process "
        f"batch ({best:.1f}/s), {ours.sps / limit:.0%} of the compute limit; c1 p50 "
        f"{results['bertserve', 1, 1].percentile(50):.2f} ms vs direct {single_ms:.2f} ms "
        f"({results['bertserve', 1, 1].percentile(50) / single_ms:.2f}x)"
    )
    if args.infinity:
        theirs = results["infinity", 64, 1]
        print(f"infinity c64x1: {theirs.rps:.1f} req/s; bertserve/infinity = {ours.rps / theirs.rps:.2f}x")
    if args.sweep:
        sweep(sentences, limit, args.seconds)


def sweep(sentences: list[str], limit: float, seconds: float) -> None:
    """max_batch_tokens x concurrency, single sentences and 32-sentence requests."""
    rows = []
    for budget in (512, 1024, 2048, 4096, 8192):
        server = start_bertserve(
            "builtin:all-minilm-l6-v2", ["--max-batch-tokens", str(budget), "--max-batch-requests", "256"]
        )
        try:
            for c, n in ((16, 1), (64, 1), (16, 32)):
                rows.append(
                    [
                        budget,
                        *_row("bertserve", c, n, load_point(server, sentences, c, n, seconds), limit)[1:],
                    ]
                )
        finally:
            server.stop()
    print("\nmax_batch_tokens sweep (max_batch_requests 256)")
    print_table(["max_batch_tokens", *HEADERS[1:]], rows)


if __name__ == "__main__":
    main()
