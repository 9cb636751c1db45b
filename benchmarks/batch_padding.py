"""How much of the served cost per sentence is padding: served batches against in-process ones.

    python -m benchmarks.batch_padding [--spec runtime=onnx,dtype=float32] [--seconds 8]

One bertserve process serving all-MiniLM-L6-v2 with ``--spec``'s options (cache off) under wrk at
concurrency 64, one STS-B sentence per request: req/s, server core-ms per request (/proc, every thread)
and, from the server's own metrics over the load, the mean batch size and padded tokens per batch. Then
the same graph in-process: batches of 32 sorted by exact token count (the serving-cost baseline), sorted
by characters only, and random batches of the served mean size (inputs as they arrive, no grouping).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections.abc import Sequence

import httpx

from benchmarks.common import print_table, real_sentences, run_wrk, start_bertserve
from benchmarks.load import batch_rates
from benchmarks.serving_cost import cpu_seconds
from models.runtime.builtins import default_home, minilm_path
from models.runtime.contract import EncoderBackend
from models.runtime.factory import create_backend
from models.runtime.folders import describe_model
from models.runtime.tokenization import TextTokenizer


def _metric(text: str, name: str) -> float:
    found = re.search(rf'^{name}{{model="minilm"}} ([0-9.e+]+)', text, re.M)
    return float(found.group(1)) if found else 0.0


def served(
    spec: str, sentences: list[str], seconds: float, extra: Sequence[str] = ()
) -> tuple[list[object], float]:
    """The served row, and the mean batch size it ran at; ``extra``: more ``bertserve serve`` flags."""
    server = start_bertserve(f"builtin:all-minilm-l6-v2,{spec}", extra)
    try:
        bodies = [json.dumps({"inputs": text}) for text in sentences]
        before_text, before_cpu = httpx.get(server.url + "/metrics").text, cpu_seconds(server.process.pid)
        load = run_wrk(server.url, "/embed", bodies, 1, 64, seconds)
        cpu = cpu_seconds(server.process.pid) - before_cpu
        after_text = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    batches, items, padded = (
        _metric(after_text, f"bertserve_batch_{name}") - _metric(before_text, f"bertserve_batch_{name}")
        for name in ("size_count", "size_sum", "tokens_sum")
    )
    done = max(load.requests - load.errors, 1)
    mean = items / max(batches, 1)
    row: list[object] = [f"served c64 ({spec})", round(load.rps, 1), round(cpu * 1000 / done, 3)]
    return [*row, round(mean, 1), round(padded / max(items, 1), 1)], mean


def _rate(tokenizer: TextTokenizer, backend: EncoderBackend, batches: list[list[str]]) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    count = 0
    for batch in batches:
        backend.forward(tokenizer.collate(tokenizer.encode(batch, truncate=True)))
        count += len(batch)
    return count / (time.perf_counter() - started), (time.process_time() - cpu) * 1000 / count


def in_process(spec: str, sentences: list[str], served_size: float) -> list[list[object]]:
    """Rows for the same graph in-process: token-sorted, character-sorted and unsorted batches."""
    description = describe_model(minilm_path())
    tokenizer = TextTokenizer.from_folder(minilm_path(), description.max_input_tokens)
    dtype = "bfloat16" if "bfloat16" in spec else "float32"
    runtime = "openvino" if dtype == "bfloat16" else "onnx"
    backend, _ = create_backend(description, runtime, "cpu", dtype, "none", default_home() / "onnx", 2)
    rows: list[list[object]] = []
    for size, rate, core_ms in batch_rates(tokenizer, backend, sentences, tokenize=True):
        if size == 32:
            rows.append(["in-process b32, sorted by tokens", round(rate, 1), round(core_ms, 3), 32, ""])
    by_chars = sorted(sentences, key=len)
    size = max(1, round(served_size))
    rng = random.Random(0)
    unsorted = [rng.sample(sentences, size) for _ in range(len(sentences) // size)]
    for label, batches in (
        ("in-process b32, sorted by characters", [by_chars[i : i + 32] for i in range(0, len(by_chars), 32)]),
        (f"in-process random batches of {size}", unsorted),
    ):
        _rate(tokenizer, backend, batches[:3])  # warm the shapes
        rate, core_ms = _rate(tokenizer, backend, batches)
        rows.append([label, round(rate, 1), round(core_ms, 3), len(batches[0]), ""])
    return rows


def main() -> None:
    """Print one table: the served point and the in-process batchings of the same graph."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--spec", default="runtime=onnx,dtype=float32", help="model options, as --model")
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    sentences = real_sentences(2000)
    row, size = served(args.spec, sentences, args.seconds)
    headers = ["point", "sentences/s", "core-ms/sentence", "batch", "padded tokens/input"]
    print_table(headers, [row, *in_process(args.spec, sentences, size)])


if __name__ == "__main__":
    main()
