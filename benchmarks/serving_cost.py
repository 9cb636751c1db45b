"""What serving costs on top of the model: server CPU per request against the model's CPU per sentence.

    python -m benchmarks.serving_cost [--seconds 8] [--variants float32,int8]

For each model variant (all-MiniLM-L6-v2 on ONNX Runtime, float32 and ``quantize=int8``), in one run:

- in-process: the same graph with tokenization, length-sorted batches of 1..64; the best batch's
  sentences/s and core-ms per sentence (process CPU time), one batch at a time on every thread or two at
  a time on half the threads each (the server's two streams), whichever is faster; and the p50 of a
  direct one-sentence call;
- served: wrk on loopback, one STS-B sentence per request, at concurrency 64 (req/s, server core-ms per
  request from /proc: utime + stime of every thread of the server, before and after) and at concurrency 1
  (p50 against the direct call); cache off, access log on (as in production);
- overhead = server core-ms per request - in-process core-ms per sentence;
- for float32 also: cache hits (memory tier, one repeated sentence), /v1/embeddings (float and base64),
  and client batches of 32 sentences (overhead per sentence);
- floors: the same load against a bare FastAPI route and a bare ASGI callable answering 384 floats
  (:mod:`benchmarks.floors`), i.e. what any Python server on this machine costs per request, at c64
  and at c1 (its p50 is the round trip a served request adds at least to a direct call); and at c1
  each measured variant's graph in a bare handler against a direct call of it (that variant's c1 floor).

Every load point is bounded by ``--seconds``; the servers start one at a time on free loopback ports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from benchmarks import floors
from benchmarks.common import (
    LoadResult,
    Process,
    free_port,
    print_table,
    real_sentences,
    run_wrk,
    start_bertserve,
    start_process,
)
from benchmarks.load import batch_rates, length_sorted
from models.runtime.builtins import default_home, minilm_path
from models.runtime.contract import EncoderBackend
from models.runtime.factory import create_backend
from models.runtime.folders import describe_model
from models.runtime.tokenization import TextTokenizer

SOURCE = "builtin:all-minilm-l6-v2"
#: Variant name -> the model spec options bertserve serves it with.
VARIANTS = {"float32": "runtime=onnx", "int8": "quantize=int8"}
#: The served processes log every request (info) as in production, to a file.
SERVER_FLAGS = ["--log-level", "info", "--cache", "none"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` (all its threads) and its waited-for children, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the name: state is field 3; utime, stime, cutime, cstime are fields 14-17 (1-based).
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Served:
    """One load point against a server, with the server's CPU over it."""

    load: LoadResult
    cpu_s: float

    @property
    def core_ms(self) -> float:
        """Server core-ms per successful request."""
        done = self.load.requests - self.load.errors
        return self.cpu_s * 1000 / max(done, 1)


def serve_point(server: Process, path: str, bodies: list[str], per_request: int, c: int, s: float) -> Served:
    """wrk against ``server`` with the server's CPU time measured around it."""
    before = cpu_seconds(server.process.pid)
    load = run_wrk(server.url, path, bodies, per_request, c, s)
    return Served(load, cpu_seconds(server.process.pid) - before)


@dataclass
class InProcess:
    """The model alone, in this process."""

    best_rate: float
    best_batch: int
    core_ms: float
    single_p50_ms: float
    #: Batches at once in the best configuration (1, or 2: two streams on half the threads each).
    streams: int = 1


def in_process(spec: str, sentences: list[str]) -> InProcess:
    """Best-batch sentences/s and core-ms per sentence of the graph bertserve serves for ``spec``: the
    better of one batch at a time on every thread and of two concurrent batches on half the threads each
    (what the server's two streams do), so that the server is held to the best the model can do."""
    threads = os.cpu_count() or 1
    description = describe_model(minilm_path())
    tokenizer = TextTokenizer.from_folder(minilm_path(), description.max_input_tokens)
    quantize = "int8" if "quantize=int8" in spec else "none"
    home = default_home() / "onnx"
    backend, _ = create_backend(description, "onnx", "cpu", "float32", quantize, home, threads)
    rates = batch_rates(tokenizer, backend, sentences, tokenize=True)
    best_batch, best_rate, core_ms = max(rates, key=lambda rate: rate[1])
    direct_p50 = single_p50(tokenizer, backend, sentences[:200])
    if threads >= 2:
        streams, _ = create_backend(description, "onnx", "cpu", "float32", quantize, home, threads, 2)
        rate, two_core_ms = two_stream_rate(tokenizer, streams, sentences, best_batch)
        if rate > best_rate:
            return InProcess(rate, best_batch, two_core_ms, direct_p50, streams=2)
    return InProcess(best_rate, best_batch, core_ms, direct_p50)


def two_stream_rate(
    tokenizer: TextTokenizer, backend: EncoderBackend, sentences: list[str], size: int
) -> tuple[float, float]:
    """(sentences/s, core-ms per sentence) of length-sorted batches of ``size`` run two at a time
    (tokenization included), on a backend with two streams."""
    texts, _ = length_sorted(tokenizer, sentences)
    batches = [texts[start : start + size] for start in range(0, len(texts), size)]

    def run(batch: list[str]) -> None:
        backend.forward(tokenizer.collate(tokenizer.encode(batch, truncate=True)))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(run, batches[:4]))  # warm both streams
        started, cpu = time.perf_counter(), time.process_time()
        list(pool.map(run, batches))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(texts) / seconds, cpu * 1000 / len(texts)


def single_p50(tokenizer: TextTokenizer, backend: EncoderBackend, sentences: list[str]) -> float:
    """p50 ms of a direct one-sentence call (tokenize, pad, forward) over ``sentences``."""
    times = []
    for text in sentences:
        started = time.perf_counter()
        backend.forward(tokenizer.collate(tokenizer.encode([text], truncate=True)))
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


HEADERS = [
    "variant",
    "point",
    "req/s",
    "sentences/s",
    "server core-ms/req",
    "model core-ms/sentence",
    "overhead core-ms/req",
    "served / in-process",
    "p50 ms",
    "p50 / direct",
]


def measure_variant(name: str, sentences: list[str], seconds: float) -> list[list[object]]:
    """Every load point of one variant; rows of the table."""
    spec = VARIANTS[name]
    model = in_process(spec, sentences[:512])
    single = [json.dumps({"inputs": [text]}) for text in sentences[:512]]
    rows: list[list[object]] = [
        [
            name,
            f"in-process batch {model.best_batch}" + (" (2 streams)" if model.streams == 2 else ""),
            "",
            model.best_rate,
            "",
            _ms(model.core_ms),
            "",
            "",
            "",
            "",
        ],
        [name, "in-process direct call c1", "", "", "", "", "", "", model.single_p50_ms, "1.00x"],
    ]

    def row(point: str, served: Served, per_request: int) -> list[object]:
        load = served.load
        overhead = served.core_ms - model.core_ms * per_request
        share = f"{load.sps / model.best_rate:.0%}"
        return [
            name,
            point,
            load.rps,
            load.sps,
            _ms(served.core_ms),
            _ms(model.core_ms),
            _ms(overhead / per_request),
            share,
            load.p50,
            "",
        ]

    server = start_bertserve(f"{SOURCE},{spec}", SERVER_FLAGS)
    try:
        c64 = serve_point(server, "/embed", single, 1, 64, seconds)
        rows.append(row("/embed c64 x1", c64, 1))
        c1 = serve_point(server, "/embed", single, 1, 1, seconds)
        rows.append([*row("/embed c1 x1", c1, 1)[:-1], f"{c1.load.p50 / model.single_p50_ms:.2f}x"])
        if name == "float32":
            rows += _float32_extras(server, sentences, seconds, row)
    finally:
        server.stop()
    if name == "float32":
        rows.append(_cache_hits(sentences[0], seconds, name))
    return rows


def _float32_extras(server: Process, sentences: list[str], seconds: float, row) -> list[list[object]]:  # type: ignore[no-untyped-def]
    openai = {"model": "minilm"}
    v1_float = [json.dumps({**openai, "input": [text]}) for text in sentences[:512]]
    v1_b64 = [
        json.dumps({**openai, "input": [text], "encoding_format": "base64"}) for text in sentences[:512]
    ]
    batches = [json.dumps({"inputs": sentences[i : i + 32]}) for i in range(0, 512, 32)]
    return [
        row(
            "/v1/embeddings float c64 x1", serve_point(server, "/v1/embeddings", v1_float, 1, 64, seconds), 1
        ),
        row("/v1/embeddings base64 c64 x1", serve_point(server, "/v1/embeddings", v1_b64, 1, 64, seconds), 1),
        row("/embed c8 x32 (per sentence)", serve_point(server, "/embed", batches, 32, 8, seconds), 32),
    ]


def _cache_hits(sentence: str, seconds: float, name: str) -> list[object]:
    server = start_bertserve(f"{SOURCE},{VARIANTS[name]}", [*SERVER_FLAGS, "--cache", "memory"])
    try:
        body = [json.dumps({"inputs": [sentence]})]
        served = serve_point(server, "/embed", body, 1, 64, seconds)
    finally:
        server.stop()
    load = served.load
    return [
        name,
        "/embed cache hits c64 x1",
        load.rps,
        load.sps,
        _ms(served.core_ms),
        "0",
        _ms(served.core_ms),
        "",
        load.p50,
        "",
    ]


def _ms(value: float) -> str:
    """Core-ms with the precision the goals need (0.20, 0.10)."""
    return f"{value:.3f}"


#: Variant -> the floors' bare callable that runs its graph in the handler, and the graph's quantization.
MODEL_FLOORS = {"float32": ("model_app", "none"), "int8": ("model_app_int8", "int8")}


def floor_rows(sentences: list[str], seconds: float, variants: list[str]) -> list[list[object]]:
    """The same load against the floors of :mod:`benchmarks.floors` (no bertserve): the bare route and
    callable at c64 and c1, and at c1, for each of ``variants``, the bare callable that runs its graph
    in the handler, against a direct call of the same graph measured here just before it."""
    rows: list[list[object]] = []
    single = [json.dumps({"inputs": [text]}) for text in sentences[:512]]
    models = dict(MODEL_FLOORS[variant] for variant in variants)
    for name in ("fastapi_app", "asgi_app", *models):
        direct_ms = None
        if name in models:
            tokenizer, backend = floors.load_model(models[name])
            single_p50(tokenizer, backend, sentences[:20])  # warm
            direct_ms = single_p50(tokenizer, backend, sentences[:200])
            del tokenizer, backend
        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", f"benchmarks.floors:{name}", "--port", str(port)]
        argv += ["--log-level", "warning", "--no-access-log", "--http", "httptools", "--loop", "uvloop"]
        server = start_process(f"floor-{name}", argv, port, "/ready")
        try:
            # c1: the round trip a served request cannot go below (added to a direct call's time).
            concurrencies = (1,) if direct_ms else (64, 1)
            points = [(c, serve_point(server, "/embed", single, 1, c, seconds)) for c in concurrencies]
        finally:
            server.stop()
        for concurrency, served in points:
            load, point = served.load, f"{name} c{concurrency} x1"
            ratio = f"{load.p50 / direct_ms:.2f}x (direct {direct_ms:.1f} ms)" if direct_ms else ""
            core_ms = _ms(served.core_ms)
            rows.append(["floor", point, load.rps, load.sps, core_ms, "", "", "", load.p50, ratio])
    return rows


def main() -> None:
    """Measure every variant and print one table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="per load point")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: float32,int8")
    parser.add_argument("--no-floors", action="store_true", help="skip the bare FastAPI / ASGI floors")
    args = parser.parse_args()
    sentences = real_sentences(2000)
    rows = []
    for name in args.variants.split(","):
        rows += measure_variant(name, sentences, args.seconds)
    if not args.no_floors:
        rows += floor_rows(sentences, args.seconds, args.variants.split(","))
    print_table(HEADERS, rows)


if __name__ == "__main__":
    main()
