"""Served throughput and latency of bertserve (and Infinity, side by side) against an in-process baseline.

    python -m benchmarks.load [--infinity] [--sweep] [--seconds 15] [--runtime auto|torch|onnx]

All servers run on loopback, one at a time, with the same real STS-B sentences (5-60 words); every load
point is bounded in requests and seconds. Ratios are measured in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
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
    run_wrk,
    start_bertserve,
    start_process,
)
from models.runtime.builtins import default_home, minilm_path
from models.runtime.contract import EncoderBackend
from models.runtime.devices import default_threads
from models.runtime.factory import cached_graph
from models.runtime.folders import describe_model
from models.runtime.onnx import OnnxBackend
from models.runtime.tokenization import TextTokenizer, TokenizedText
from models.runtime.torch_backend import TorchBackend

#: This machine kind: ~180 GFLOP/s float32 on 2 threads; all-MiniLM-L6-v2: ~21.5 MFLOP per token.
MACHINE_FLOPS = 180e9
MODEL_FLOPS_PER_TOKEN = 21.5e6
INFINITY = Path("~/.cache/peers/infinity/bin/infinity_emb").expanduser()


def in_process_baseline(sentences: list[str], runtime: str) -> tuple[list[tuple[int, float]], float, float]:
    """Sentences/s per batch size (length-sorted batches), p50 ms of one sentence, mean tokens."""
    threads = default_threads()
    torch.set_num_threads(threads)
    description = describe_model(minilm_path())
    tokenizer = TextTokenizer.from_folder(minilm_path(), description.max_input_tokens)
    backend: EncoderBackend = (
        OnnxBackend(cached_graph(description, default_home() / "onnx"), threads)
        if runtime == "onnx"
        else TorchBackend(description, "cpu", "float32")
    )
    rates = [(size, rate) for size, rate, _ in batch_rates(tokenizer, backend, sentences)]
    items = tokenizer.encode(sentences, truncate=True)
    single = []
    for text in sentences[:100]:
        started = time.perf_counter()
        backend.forward(tokenizer.collate(tokenizer.encode([text], truncate=True)))
        single.append((time.perf_counter() - started) * 1000)
    mean_tokens = float(np.mean([item.tokens for item in items]))
    return rates, float(np.median(single)), mean_tokens


def length_sorted(tokenizer: TextTokenizer, sentences: list[str]) -> tuple[list[str], list[TokenizedText]]:
    """``sentences`` and their tokenized items, shortest first (how the benchmarks form batches)."""
    items = tokenizer.encode(sentences, truncate=True)
    order = sorted(range(len(items)), key=lambda i: items[i].tokens)
    return [sentences[i] for i in order], [items[i] for i in order]


def batch_rates(
    tokenizer: TextTokenizer, backend: EncoderBackend, sentences: list[str], tokenize: bool = False
) -> list[tuple[int, float, float]]:
    """(batch size, sentences/s, core-ms per sentence) over ``sentences`` in length-sorted batches;
    tokenization is timed too when ``tokenize`` is set (else done up front)."""
    texts, items = length_sorted(tokenizer, sentences)
    backend.forward(tokenizer.collate(items[:8]))
    rates = []
    for size in (1, 8, 16, 32, 64):
        started, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(items), size):
            chunk = (
                tokenizer.encode(texts[start : start + size], truncate=True)
                if tokenize
                else items[start : start + size]
            )
            backend.forward(tokenizer.collate(chunk))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        rates.append((size, len(items) / seconds, cpu * 1000 / len(items)))
    return rates


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
    server: Process, client: str, sentences: list[str], concurrency: int, per_request: int, seconds: float
) -> LoadResult:
    """One bounded closed-loop load run against ``server`` from the ``httpx`` or ``wrk`` client."""
    path, body = ("/embed", _tei_body) if server.name == "bertserve" else ("/embeddings", _openai_body)
    if client == "wrk":
        bodies = [
            json.dumps(body(sentences[i : i + per_request]))
            for i in range(0, min(len(sentences), 512 * per_request), per_request)
        ]
        return run_wrk(server.url, path, bodies, per_request, concurrency, seconds)
    return asyncio.run(run_load(server.url, path, body, sentences, concurrency, per_request, 20_000, seconds))


HEADERS = [
    "server",
    "client",
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
#: (client, concurrency, sentences per request); httpx is the required generator, wrk costs ~no CPU.
POINTS = [("httpx", c, n) for n in (1, 32) for c in (1, 16, 64)] + [
    ("wrk", 1, 1),
    ("wrk", 16, 1),
    ("wrk", 64, 1),
    ("wrk", 64, 32),
]


def measure(
    name: str, start: Callable[[], Process], sentences: list[str], seconds: float, limit: float
) -> dict[tuple[str, int, int], LoadResult]:
    """Every load point against one freshly started server; prints one row per point."""
    results = {}
    server = start()
    try:
        for client, c, n in POINTS:
            result = load_point(server, client, sentences, c, n, seconds)
            results[client, c, n] = result
            print_table(
                HEADERS,
                [
                    [
                        name,
                        client,
                        c,
                        n,
                        result.rps,
                        result.sps,
                        result.p50,
                        result.p95,
                        result.p99,
                        result.errors,
                        f"{result.sps / limit:.0%}",
                    ]
                ],
                header=False,
            )
    finally:
        server.stop()
    return results


def main() -> None:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0, help="per load point")
    parser.add_argument("--infinity", action="store_true", help="also measure Infinity (torch engine)")
    parser.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnx"])
    parser.add_argument("--sweep", action="store_true", help="sweep max_batch_tokens")
    args = parser.parse_args()
    sentences = real_sentences(2000)
    backend = "torch" if args.runtime == "torch" else "onnx"
    rates, single_ms, mean_tokens = in_process_baseline(sentences[:512], backend)
    limit = MACHINE_FLOPS / (MODEL_FLOPS_PER_TOKEN * mean_tokens)
    best = max(rate for _, rate in rates)
    print(f"\nsentences: {len(sentences)}, mean tokens {mean_tokens:.1f}, compute limit {limit:.0f}/s")
    print_table([f"in-process {backend} batch size", "sentences/s"], [[b, r] for b, r in rates])
    print(f"direct single-sentence call p50: {single_ms:.2f} ms\n")
    print_table(HEADERS, [])
    ours = measure(
        "bertserve",
        lambda: start_bertserve(f"builtin:all-minilm-l6-v2,runtime={args.runtime}"),
        sentences,
        args.seconds,
        limit,
    )
    theirs = measure("infinity", start_infinity, sentences, args.seconds, limit) if args.infinity else {}
    print()
    for client in ("httpx", "wrk"):
        served = ours[client, 64, 1]
        line = (
            f"{client}: bertserve c64x1 {served.sps:.1f}/s = {served.sps / best:.0%} of the best "
            f"in-process batch ({best:.1f}/s), {served.sps / limit:.0%} of the compute limit; "
            f"c1 p50 {ours[client, 1, 1].p50:.2f} ms = {ours[client, 1, 1].p50 / single_ms:.2f}x direct"
        )
        if theirs:
            peer = theirs[client, 64, 1].rps
            line += f"; infinity c64x1 {peer:.1f} req/s, bertserve/infinity {served.rps / peer:.2f}x"
        print(line)
    if args.sweep:
        sweep(sentences, limit, args.seconds)


def sweep(sentences: list[str], limit: float, seconds: float) -> None:
    """max_batch_tokens x concurrency, from wrk (so the client does not cap the server)."""
    print("\nmax_batch_tokens sweep (max_batch_requests 256, wrk client)")
    headers = ["max_batch_tokens", "concurrency", "sentences/req", "req/s", "sentences/s", "p50 ms", "p99 ms"]
    print_table(headers, [])
    for budget in (256, 512, 1024, 2048, 4096, 8192):
        server = start_bertserve(
            "builtin:all-minilm-l6-v2", ["--max-batch-tokens", str(budget), "--max-batch-requests", "256"]
        )
        try:
            for c, n in ((16, 1), (64, 1), (16, 32)):
                r = load_point(server, "wrk", sentences, c, n, seconds)
                print_table(headers, [[budget, c, n, r.rps, r.sps, r.p50, r.p99]], header=False)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
