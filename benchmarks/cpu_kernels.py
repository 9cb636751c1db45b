"""The CPU's fast kernels side by side: ONNX Runtime float32 vs OpenVINO float32 / bfloat16 / int8 vs
sentence-transformers' OpenVINO backend (in-process), then the default serve (dtype auto) vs float32 ONNX
Runtime served, parity with sentence-transformers float32, and STS-B through the default server.

    python -m benchmarks.cpu_kernels [--rounds 3] [--int8 VARIANT_FOLDER] [--st-python PYTHON]
                                  [--seconds 15] [--no-served]

In-process: all-MiniLM-L6-v2, the graph the server exports (pooling inside), length-sorted batches of 1, 8
and 32 over 512 real STS-B sentences (256 for batch 1), best of ``--rounds`` rounds in which the runtimes
alternate (shared machine: ratios inside one run are what counts). ``--int8``: an OpenVINO int8 variant
(``bertserve models quantize --runtime openvino``), repeatable to compare recipes side by side.
``--st-python``: an interpreter with sentence-transformers and optimum-intel (see
``benchmarks/st_openvino.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import print_table, real_sentences, start_bertserve
from benchmarks.eval_sts import evaluate_sts
from benchmarks.load import load_point
from models.runtime.autodtype import choose_backend
from models.runtime.builtins import default_home, minilm_path
from models.runtime.cpu import host_bf16_flag
from models.runtime.factory import create_backend
from models.runtime.folders import describe_model
from models.runtime.inference import text_rows
from models.runtime.postprocess import cosine_drift
from models.runtime.tokenization import TextTokenizer
from models.training.evaluate import Candidate, quality, speed

#: (name, runtime, dtype, quantize) of the in-process candidates; the first is the baseline.
RUNS = [
    ("onnxruntime float32", "onnx", "float32", "none"),
    ("openvino float32", "openvino", "float32", "none"),
    ("openvino bfloat16", "openvino", "bfloat16", "none"),
    ("onnxruntime int8 (dynamic)", "onnx", "float32", "int8"),
    ("openvino int8 (the dynamic graph)", "openvino", "float32", "int8"),
]


def candidates(threads: int, int8: list[Path]) -> list[Candidate]:
    """The runtimes to compare, loaded the way the server loads them."""
    home = default_home() / "onnx"
    base = describe_model(minilm_path())
    tokenizer = TextTokenizer.from_folder(base.path, base.max_input_tokens)
    loaded = []
    # OpenVINO refuses bfloat16 on a CPU without it (it would compile float32 under that name).
    native_bf16 = host_bf16_flag() is not None
    for name, runtime, dtype, quantize in RUNS:
        if dtype == "bfloat16" and not native_bf16:
            continue
        backend, _ = create_backend(base, runtime, "cpu", dtype, quantize, home, threads)  # type: ignore[arg-type]
        loaded.append(Candidate(name, base, backend, runtime, tokenizer))
    for folder in int8:
        variant = describe_model(folder)
        backend, runtime = create_backend(variant, "openvino", "cpu", "float32", "none", home, threads)
        name = f"openvino int8 (static, NNCF: {folder.name})"
        loaded.append(Candidate(name, variant, backend, runtime, tokenizer))
    return loaded


def sentence_transformers_openvino(python: str, texts: list[str], rounds: int) -> dict[str, object]:
    """Rates and rows of sentence-transformers ``backend="openvino"`` (run by ``python``)."""
    with tempfile.TemporaryDirectory() as scratch:
        sentences, out = Path(scratch) / "sentences.json", Path(scratch) / "out.json"
        sentences.write_text(json.dumps(texts))
        script = Path(__file__).with_name("st_openvino.py")
        subprocess.run(
            [python, str(script), str(minilm_path()), str(sentences), str(out), str(rounds)],
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            timeout=1800,
        )
        result: dict[str, object] = json.loads(out.read_text())
    return result


def in_process(args: argparse.Namespace, texts: list[str], threads: int) -> None:
    """The in-process table: sentences/s per batch size, speed-up at batch 32, cosine to the baseline."""
    loaded = candidates(threads, args.int8)
    figures = speed(loaded, texts, args.rounds, progress=False)
    reference = text_rows(loaded[0].backend, loaded[0].tokenizer, texts)
    rows = []
    for candidate in loaded:
        got = figures[candidate.name]
        low, _ = cosine_drift(reference, text_rows(candidate.backend, candidate.tokenizer, texts))
        sts = quality(candidate, default_home())[0]["sts_spearman"]
        rows.append([candidate.name, *(got[f"throughput_b{b}"] for b in (1, 8, 32)), low, f"{sts:.4f}"])
    if args.st_python:
        st = sentence_transformers_openvino(args.st_python, texts, args.rounds)
        rates = st["rates"]
        assert isinstance(rates, dict)
        low, _ = cosine_drift(reference, np.asarray(st["rows"], dtype=np.float32))
        name = f"sentence-transformers openvino ({st['precision']})"
        rows.append([name, *(rates[f"b{b}"] for b in (1, 8, 32)), low, "-"])
    base32 = rows[0][3]
    headers = ["runtime", "b1 sent/s", "b8 sent/s", "b32 sent/s", "x ORT fp32 @b1", "x ORT fp32 @b32"]
    headers += ["min cosine to ORT fp32", "STS-B test"]
    table = [
        [*row[:4], f"{row[1] / rows[0][1]:.2f}x", f"{row[3] / base32:.2f}x", f"{row[4]:.5f}", row[5]]
        for row in rows
    ]
    print_table(headers, table)
    # OpenVINO bfloat16 where this CPU has it, else OpenVINO float32.
    new_shapes([c for c in loaded if c.name in ("openvino float32", "openvino bfloat16")][-1])


def new_shapes(candidate: Candidate) -> None:
    """First and second call of batch shapes the compiled model has not seen: no recompilation."""
    tokenizer, texts = candidate.tokenizer, real_sentences(64, seed=7)
    print(f"\n{candidate.name}, new batch shapes (ms): first call, second call")
    for size in (3, 13, 29):
        batch = tokenizer.collate(tokenizer.encode(texts[:size], truncate=True))
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            candidate.backend.forward(batch)
            timings.append((time.perf_counter() - started) * 1000)
        print(f"  {batch.input_ids.shape}: {timings[0]:.2f}, {timings[1]:.2f}")


def parity(texts: list[str], threads: int) -> None:
    """The default serve's model (dtype auto) against sentence-transformers float32 (PyTorch)."""
    from sentence_transformers import SentenceTransformer

    base = describe_model(minilm_path())
    choice = choose_backend(base, "auto", "cpu", "auto", "none", default_home() / "onnx", threads)
    tokenizer = TextTokenizer.from_folder(base.path, base.max_input_tokens)
    ours = text_rows(choice.backend, tokenizer, texts)
    theirs = SentenceTransformer(str(minilm_path()), device="cpu").encode(texts, batch_size=32)
    low, mean = cosine_drift(np.asarray(theirs), ours)
    print(f"\nparity, {len(texts)} sentences: default ({choice.runtime} {choice.backend.dtype}) vs")
    print(f"sentence-transformers float32: min cosine {low:.6f}, mean {mean:.6f}; {choice.reason}")


def served(sentences: list[str], seconds: float) -> None:
    """Default serve (dtype auto) vs float32 ONNX Runtime, one after the other; STS-B on the default."""
    headers = ["server", "client", "concurrency", "sentences/req", "sentences/s", "p50 ms", "p99 ms"]
    print()
    print_table(headers, [])
    rates: dict[str, float] = {}
    for name, source in (
        ("float32 onnxruntime", "builtin:all-minilm-l6-v2,dtype=float32"),
        ("default (dtype auto)", "builtin:all-minilm-l6-v2"),
    ):
        server = start_bertserve(source)
        try:
            for client, c, n in (("wrk", 64, 1), ("httpx", 64, 1), ("wrk", 64, 32)):
                r = load_point(server, client, sentences, c, n, seconds)
                rates[f"{name} {client} {c}x{n}"] = r.sps
                print_table(headers, [[name, client, c, n, r.sps, r.p50, r.p99]], header=False)
            if name.startswith("default"):
                spearman = evaluate_sts(server.url, "test", default_home(), None)
        finally:
            server.stop()
    for client, shape in (("wrk", "64x1"), ("httpx", "64x1"), ("wrk", "64x32")):
        exact = max(rates[f"float32 onnxruntime {client} {shape}"], 1e-9)
        ratio = rates[f"default (dtype auto) {client} {shape}"] / exact
        print(f"{client} c{shape}: default / float32 ORT served = {ratio:.2f}x")
    print(f"STS-B test Spearman through the default server: {spearman:.4f}")


def main() -> None:
    """Run every part and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--int8", type=Path, action="append", default=[], help="an OpenVINO int8 variant folder (repeatable)"
    )
    parser.add_argument("--st-python", help="interpreter with sentence-transformers + optimum-intel")
    parser.add_argument("--seconds", type=float, default=15.0, help="per served load point")
    parser.add_argument("--no-served", action="store_true", help="skip the served comparison")
    parser.add_argument("--sentences", type=int, default=512, help="in-process sentences (a quick check: 64)")
    args = parser.parse_args()
    threads = os.cpu_count() or 1
    sentences = real_sentences(2000)
    in_process(args, sentences[: args.sentences], threads)
    parity(sentences[:300], threads)
    if not args.no_served:
        served(sentences, args.seconds)


if __name__ == "__main__":
    main()
