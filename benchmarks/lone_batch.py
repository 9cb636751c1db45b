"""A lone batch on every thread (``lone_batch_all_threads``), run on the event loop's thread when small
(``loop_batch_tokens``), against the same on a batch worker, and against each batch on its stream's share.

    python -m benchmarks.lone_batch [--seconds 6] [--rounds 2] [--variants float32,int8]

For all-MiniLM-L6-v2 on ONNX Runtime (float32 and ``quantize=int8``), two streams: the server with the
settings on and off, side by side in one run (rounds alternate their order). Per server: wrk on loopback,
one STS-B sentence per request, at concurrency 1 (p50, and its ratio to a direct in-process call on every
thread), 4 and 64 (req/s, p50, server core-ms per request from /proc); cache off; and the server's RSS
after the load. The best round of each counts (highest req/s, lowest p50).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from benchmarks.common import print_table, real_sentences, start_bertserve
from benchmarks.serving_cost import SERVER_FLAGS, SOURCE, VARIANTS, serve_point, single_p50
from benchmarks.soak import rss_mb
from models.runtime.builtins import default_home, minilm_path
from models.runtime.devices import default_threads
from models.runtime.factory import create_backend
from models.runtime.folders import describe_model
from models.runtime.tokenization import TextTokenizer

SETTINGS = {
    "every thread, on the loop (default)": [],
    "every thread, on a worker": ["--loop-batch-tokens", "0"],
    "off": ["--no-lone-batch-all-threads", "--loop-batch-tokens", "0"],
}
CONCURRENCY = (1, 4, 64)


@dataclass
class Point:
    """The best of the rounds at one concurrency."""

    rps: float = 0.0
    p50: float = float("inf")
    core_ms: float = float("inf")

    def add(self, rps: float, p50: float, core_ms: float) -> None:
        """Keep the best figures seen."""
        self.rps = max(self.rps, rps)
        self.p50 = min(self.p50, p50)
        self.core_ms = min(self.core_ms, core_ms)


def direct_p50(spec: str, sentences: list[str]) -> float:
    """p50 ms of a direct one-sentence call on every thread (one stream), the graph the server runs."""
    description = describe_model(minilm_path())
    tokenizer = TextTokenizer.from_folder(minilm_path(), description.max_input_tokens)
    quantize = "int8" if "quantize=int8" in spec else "none"
    threads = default_threads()
    home = default_home() / "onnx"
    backend, _ = create_backend(description, "onnx", "cpu", "float32", quantize, home, threads)
    single_p50(tokenizer, backend, sentences[:20])  # warm
    return single_p50(tokenizer, backend, sentences)


def measure(
    spec: str, flags: list[str], bodies: list[str], seconds: float, points: dict[int, Point]
) -> float:
    """One server's load points (added to ``points``); returns its RSS in MB after the load."""
    server = start_bertserve(f"{SOURCE},{spec}", [*SERVER_FLAGS, *flags])
    try:
        serve_point(server, "/embed", bodies, 1, 64, 2)  # warm every batch shape once
        for concurrency in CONCURRENCY:
            served = serve_point(server, "/embed", bodies, 1, concurrency, seconds)
            points[concurrency].add(served.load.rps, served.load.p50, served.core_ms)
        return rss_mb(server.process.pid)
    finally:
        server.stop()


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default="float32,int8")
    args = parser.parse_args()
    sentences = real_sentences(2000)
    bodies = [json.dumps({"inputs": [text]}) for text in sentences[:512]]
    rows = []
    for variant in args.variants.split(","):
        spec = VARIANTS[variant]
        direct = direct_p50(spec, sentences[:200])
        results = {name: {c: Point() for c in CONCURRENCY} for name in SETTINGS}
        rss: dict[str, float] = {}
        for round_ in range(args.rounds):
            order = list(SETTINGS.items())
            for name, flags in order if round_ % 2 == 0 else order[::-1]:
                rss[name] = measure(spec, flags, bodies, args.seconds, results[name])
        for name, points in results.items():
            c1, c4, c64 = (points[c] for c in CONCURRENCY)
            rows.append(
                [
                    variant,
                    name,
                    f"{c1.p50:.2f}",
                    f"{c1.p50 / direct:.2f}x",
                    f"{c4.rps:.0f} / {c4.p50:.1f}",
                    f"{c64.rps:.0f} / {c64.core_ms:.2f}",
                    f"{rss[name]:.0f}",
                ]
            )
        rows.append([variant, "direct call (every thread)", f"{direct:.2f}", "1.00x", "", "", ""])
    headers = ["variant", "lone batch", "c1 p50 ms", "c1 / direct", "c4 req/s / p50 ms"]
    print_table([*headers, "c64 req/s / core-ms", "RSS MB"], rows)


if __name__ == "__main__":
    main()
