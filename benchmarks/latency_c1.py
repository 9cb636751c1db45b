"""Concurrency-1 latency of bertserve against a direct in-process call, for a few server settings.

    python -m benchmarks.latency_c1 [--seconds 8]

One sentence per request from wrk (one connection); the direct call (tokenize, pad, ONNX Runtime) is
measured first in this process; the table gives each setting's p50 as a multiple of it.
"""

from __future__ import annotations

import argparse
import json

from benchmarks.common import print_table, real_sentences, run_wrk, start_bertserve
from benchmarks.load import in_process_baseline

SETTINGS = (
    ["--inline-tokenize-chars", "0"],
    ["--inline-tokenize-chars", "1024"],
    ["--inline-tokenize-chars", "1024", "--threads", "1"],
)


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    sentences = real_sentences(2000)
    _, direct_ms, _ = in_process_baseline(sentences[:300], "onnx")
    bodies = [json.dumps({"inputs": [text]}) for text in sentences[:500]]
    rows = []
    for extra in SETTINGS:
        server = start_bertserve("builtin:all-minilm-l6-v2", extra)
        try:
            result = run_wrk(server.url, "/embed", bodies, 1, 1, args.seconds)
        finally:
            server.stop()
        rows.append([" ".join(extra), result.rps, f"{result.p50:.3f}", f"{result.p50 / direct_ms:.2f}x"])
    print(f"direct in-process p50: {direct_ms:.3f} ms")
    print_table(["setting", "req/s", "p50 ms", "p50 / direct"], rows)


if __name__ == "__main__":
    main()
