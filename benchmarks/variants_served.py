"""Served throughput of compressed variants against the float32 base, side by side in one run.

    python -m benchmarks.variants_served --seconds 10 [--rounds 2] [--infinity] [NAME=FOLDER ...]

Each model is served by its own bertserve process (loopback, no result cache), one at a time, under the
same closed-loop load: concurrency 64, one real STS-B sentence per request, from wrk (almost no CPU) and
from the httpx generator. Rounds alternate the models; the best round of each counts. Without arguments
it serves the variants that ``make variants`` builds. The float32 reference is the exact path (ONNX
Runtime, float32); the default serve (``dtype: auto``) runs beside it.

``--infinity`` adds Infinity's best CPU setting to the rotation: infinity-emb 0.0.78, optimum engine,
all-MiniLM-L6-v2 exported by ``optimum-cli export onnx`` and quantized by ``optimum-cli onnxruntime
quantize --avx512_vnni --per_channel`` (int8, per-channel), mean pooling (see shared/peers/infinity.md;
its own venv at ~/.cache/peers/infinity).
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import (
    LoadResult,
    Process,
    free_port,
    print_table,
    real_sentences,
    start_bertserve,
    start_process,
)
from benchmarks.load import INFINITY, load_point
from models.runtime.builtins import default_home, minilm_path

BASE = "builtin:all-minilm-l6-v2"
DEFAULT_VARIANTS = ("minilm-int8", "minilm-pruned", "minilm-l3", "minilm-l3-pruned-int8")
INFINITY_INT8 = "infinity optimum int8"
PEERS = Path("~/.cache/peers").expanduser()


def _infinity_int8_folder() -> Path:
    """all-MiniLM-L6-v2 as Infinity's optimum engine wants it: ONNX, int8 per-channel, at the root."""
    folder = PEERS / "minilm-onnx" / "int8"
    if (folder / "model_quantized.onnx").is_file():
        return folder
    optimum = str(INFINITY.with_name("optimum-cli"))
    exported = PEERS / "minilm-onnx" / "fp32"
    export = [optimum, "export", "onnx", "--model", str(minilm_path()), "--task", "feature-extraction"]
    offline = {**os.environ, "HF_HUB_OFFLINE": "1"}  # a local folder: nothing to fetch
    subprocess.run([*export, "--library-name", "transformers", str(exported)], check=True, env=offline)
    quantize = [optimum, "onnxruntime", "quantize", "--onnx_model", str(exported), "--avx512_vnni"]
    subprocess.run([*quantize, "--per_channel", "-o", str(folder)], check=True, env=offline)
    return folder


def start_infinity_int8() -> Process:
    """Infinity 0.0.78 on its optimum engine with the int8 model (mean pooling: its default is CLS)."""
    port = free_port()
    argv = [str(INFINITY), "v2", "--model-id", ".", "--served-model-name", "minilm"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--engine", "optimum"]
    argv += ["--pooling-method", "mean", "--device", "cpu"]
    env = {"DO_NOT_TRACK": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    folder = _infinity_int8_folder()
    return start_process("infinity", argv, port, "/health", env=env, cwd=folder, timeout=600)


def _servers(arguments: list[str], infinity: bool) -> dict[str, Callable[[], Process]]:
    # The exact float32 path (ONNX Runtime) is the reference; the default serve (dtype auto: bfloat16
    # on OpenVINO where the CPU has it) is measured beside it.
    sources = {"float32 base": f"{BASE},runtime=onnx,dtype=float32", "default (dtype auto)": BASE}
    if not arguments:
        root = default_home() / "variants"
        arguments = [f"{name}={root / name}" for name in DEFAULT_VARIANTS if (root / name).is_dir()]
    for item in arguments:
        name, _, folder = item.partition("=")
        # A folder, or a model spec with options (``builtin:NAME,runtime=onnx``) as --model takes it.
        spec = ":" in folder.split(",")[0] or "," in folder
        sources[name] = folder if spec else str(Path(folder).expanduser().resolve())
    servers: dict[str, Callable[[], Process]] = {
        name: functools.partial(start_bertserve, source) for name, source in sources.items()
    }
    if infinity:
        servers[INFINITY_INT8] = start_infinity_int8
    return servers


def main() -> None:
    """Serve each model in turn under the same load; print the best round of each and its ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "variants", nargs="*", help="NAME=FOLDER (default: the variants `make variants` builds)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per load point")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; models alternate within a round")
    parser.add_argument("--infinity", action="store_true", help="also serve Infinity's optimum int8")
    args = parser.parse_args()
    sentences = real_sentences(2000)
    models = _servers(args.variants, args.infinity)
    best: dict[tuple[str, str], LoadResult] = {}
    for _ in range(args.rounds):
        for name, start in models.items():
            server = start()
            try:
                for client in ("wrk", "httpx"):
                    result = load_point(server, client, sentences, 64, 1, args.seconds)
                    if result.errors == 0 and (
                        (name, client) not in best or result.rps > best[name, client].rps
                    ):
                        best[name, client] = result
            finally:
                server.stop()
    _print_best(list(models), best)


def _print_best(names: list[str], best: dict[tuple[str, str], LoadResult]) -> None:
    rows: list[list[object]] = []
    for name in names:
        for client in ("wrk", "httpx"):
            measured = best.get((name, client))
            if measured is None:
                rows.append([name, client, "errors", "", "", "", "", ""])
                continue
            ratios = [
                _ratio(measured, best.get((other, client))) for other in ("float32 base", INFINITY_INT8)
            ]
            rows.append([name, client, measured.rps, *ratios, measured.p50, measured.p99, measured.errors])
    headers = ["model", "client", "req/s (c64 x 1)", "vs float32", "vs infinity int8", "p50 ms", "p99 ms"]
    print_table([*headers, "errors"], rows)


def _ratio(result: LoadResult, reference: LoadResult | None) -> str:
    return f"{result.rps / reference.rps:.2f}x" if reference else "-"


if __name__ == "__main__":
    main()
