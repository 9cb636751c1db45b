"""The ``eval`` step: quality and speed of variants against their base, measured side by side in one run.

Every model runs through the backend the service would pick for it (ONNX Runtime on CPU for float32 and
int8, OpenVINO for its own int8 graphs), or, with ``runtimes``, on every CPU runtime and dtype that can run
it (ONNX Runtime float32 / int8, OpenVINO float32 / bfloat16 / int8), on the same real sentences:

- quality: STS-B test Spearman (embedding models) or held-out sentiment accuracy (classifiers), and the
  cosine of each output to the base's output on the same sentence (min and mean over STS-B test);
- speed: in-process throughput on length-sorted batches of the engine's sizes (1, 8, 32), on all cores,
  best of several rounds that alternate the models (the machines are shared and noisy: ratios measured
  together are what counts), and the median latency of one sentence;
- size: bytes of the weight files on disk, and the number of parameters (weight elements).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from models.runtime.contract import EncoderBackend
from models.runtime.cpu import host_bf16_flag
from models.runtime.devices import default_threads
from models.runtime.factory import create_backend
from models.runtime.folders import ModelDescription, describe_model
from models.runtime.inference import text_rows
from models.runtime.postprocess import comparable, cosine_drift
from models.runtime.tokenization import TextTokenizer
from models.runtime.types import DType, Runtime
from models.training.data import SENTIMENT_LABELS, load_sts, sentiment_splits

BATCH_SIZES = (1, 8, 32)
#: (runtime, dtype) a model with float weights runs on, the service's float32 choice first.
FLOAT_RUNS: tuple[tuple[Runtime, DType], ...] = (
    ("onnx", "float32"),
    ("openvino", "float32"),
    ("openvino", "bfloat16"),
)


@dataclass
class Candidate:
    """One model under evaluation."""

    name: str
    description: ModelDescription
    backend: EncoderBackend
    runtime: str
    tokenizer: TextTokenizer


def runs_for(description: ModelDescription) -> list[tuple[Runtime, DType]]:
    """The (runtime, dtype) pairs that can run ``description`` on CPU; an int8 graph's dtype is its own
    (``float32`` here only selects no other)."""
    if description.openvino_only:
        return [("openvino", "float32")]
    if description.onnx_only:
        return [("onnx", "float32"), ("openvino", "float32")]
    # OpenVINO runs bfloat16 only on CPUs that have it natively (and refuses to call float32 bfloat16).
    native_bf16 = host_bf16_flag() is not None
    return [(runtime, dtype) for runtime, dtype in FLOAT_RUNS if native_bf16 or dtype != "bfloat16"]


def load_candidates(name: str, path: Path, home: Path, threads: int, runtimes: bool) -> list[Candidate]:
    """Load ``path`` the way the service would on CPU (runtime auto, float32 or the variant's int8) and,
    with ``runtimes``, on every other runtime and dtype too (named ``NAME runtime/dtype``)."""
    description = describe_model(path)
    tokenizer = TextTokenizer.from_folder(description.path, description.max_input_tokens)
    runs = runs_for(description)
    candidates = []
    for index, (runtime, dtype) in enumerate(runs if runtimes else runs[:1]):
        backend, used = create_backend(description, runtime, "cpu", dtype, "none", home / "onnx", threads)
        label = name if index == 0 else f"{name} {used}/{backend.dtype}"
        candidates.append(Candidate(label, description, backend, used, tokenizer))
    return candidates


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties sharing their average rank (as Spearman's rho needs)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2
        start = end + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation of ``a`` and ``b``."""
    ra, rb = average_ranks(np.asarray(a, dtype=np.float64)), average_ranks(np.asarray(b, dtype=np.float64))
    return float(np.corrcoef(ra, rb)[0, 1])


def quality(candidate: Candidate, home: Path) -> tuple[dict[str, float], np.ndarray]:
    """The task figure, and the rows the cosine-to-base comparison uses (STS-B test sentences)."""
    pairs = load_sts("test", home)
    sentences = sorted({text for pair in pairs for text in (pair.sentence1, pair.sentence2)})
    rows = text_rows(candidate.backend, candidate.tokenizer, sentences)
    if candidate.description.task == "classify":
        _, heldout = sentiment_splits(home)
        logits = text_rows(candidate.backend, candidate.tokenizer, [example.text for example in heldout])
        labels = list(candidate.description.labels)
        named = set(labels) == set(SENTIMENT_LABELS)
        # The model's class indices, mapped to the data's label order when it names the same labels.
        mapped = [SENTIMENT_LABELS.index(labels[i]) if named else int(i) for i in logits.argmax(axis=1)]
        accuracy = float(np.mean([p == example.label for p, example in zip(mapped, heldout, strict=True)]))
        return {"sentiment_accuracy": round(accuracy, 4)}, rows
    position = {text: i for i, text in enumerate(sentences)}
    normalised = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    similarity = [float(normalised[position[p.sentence1]] @ normalised[position[p.sentence2]]) for p in pairs]
    return {"sts_spearman": round(spearman(similarity, [p.score for p in pairs]), 4)}, rows


def throughput(candidate: Candidate, texts: Sequence[str], batch_size: int) -> tuple[float, float]:
    """Sentences per second over ``texts`` in length-sorted batches, and the median batch latency (ms)."""
    items = candidate.tokenizer.encode(list(texts), truncate=True)
    items.sort(key=lambda item: item.tokens)
    batches = [
        candidate.tokenizer.collate(items[i : i + batch_size], candidate.backend.token_multiple)
        for i in range(0, len(items), batch_size)
    ]
    candidate.backend.forward(batches[len(batches) // 2])  # warm-up
    latencies = []
    started = time.perf_counter()
    for batch in batches:
        began = time.perf_counter()
        candidate.backend.forward(batch)
        latencies.append(time.perf_counter() - began)
    elapsed = time.perf_counter() - started
    return len(items) / elapsed, float(np.median(latencies) * 1000)


def speed(
    candidates: Sequence[Candidate], texts: Sequence[str], rounds: int, progress: bool
) -> dict[str, dict[str, float]]:
    """Best-of-``rounds`` throughput per batch size and p50 single-sentence latency, models alternating."""
    best: dict[str, dict[str, float]] = {c.name: {} for c in candidates}
    steps = tqdm(total=rounds * len(candidates), desc="speed", disable=not progress)
    for _ in range(rounds):
        for candidate in candidates:
            figures = best[candidate.name]
            for size in BATCH_SIZES:
                sample = texts[: 256 if size == 1 else len(texts)]
                rate, latency = throughput(candidate, sample, size)
                figures[f"throughput_b{size}"] = max(figures.get(f"throughput_b{size}", 0.0), round(rate, 1))
                if size == 1:
                    figures["p50_ms"] = min(figures.get("p50_ms", float("inf")), round(latency, 3))
            steps.update(1)
    steps.close()
    return best


def footprint(description: ModelDescription) -> dict[str, int]:
    """Bytes of the weight file(s) on disk and the number of weight elements."""
    if description.openvino_only:
        import openvino as ov

        model = ov.Core().read_model(str(description.weights))
        constants = [op for op in model.get_ordered_ops() if op.get_type_name() == "Constant"]
        params = sum(int(np.prod(op.get_output_shape(0))) for op in constants)
        size = sum(f.stat().st_size for f in (description.weights, description.weights.with_suffix(".bin")))
        return {"size_bytes": size, "parameters": params}
    if description.onnx_only:
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(description.weights)).graph
        params = sum(int(numpy_helper.to_array(init).size) for init in graph.initializer)
    else:
        from safetensors import safe_open

        with safe_open(str(description.weights), framework="np") as handle:
            params = sum(int(np.prod(handle.get_slice(key).get_shape())) for key in handle.keys())  # noqa: SIM118 (not iterable)
    return {"size_bytes": description.weights.stat().st_size, "parameters": params}


def evaluate(
    base: Path,
    variants: dict[str, Path],
    home: Path,
    rounds: int = 3,
    threads: int | None = None,
    progress: bool = True,
    runtimes: bool = False,
) -> dict[str, dict[str, Any]]:
    """Quality and speed of ``base`` and each variant (name -> folder), measured in one run; with
    ``runtimes``, each on every CPU runtime and dtype that runs it."""
    threads = threads or default_threads()
    candidates = load_candidates("base", base, home, threads, runtimes)
    for name, path in variants.items():
        candidates += load_candidates(name, path, home, threads, runtimes)
    results: dict[str, dict[str, Any]] = {}
    reference: np.ndarray | None = None
    for candidate in tqdm(candidates, desc="quality", disable=not progress):
        figures, rows = quality(candidate, home)
        reference = rows if reference is None else reference
        task = candidate.description.task
        low, mean = cosine_drift(comparable(reference, task), comparable(rows, task))
        recipe = (candidate.description.variant or {}).get("recipe", "base")
        results[candidate.name] = {
            "path": str(candidate.description.path),
            "recipe": recipe,
            "runtime": candidate.runtime,
            "dtype": candidate.backend.dtype,
            "task": candidate.description.task,
            **figures,
            "cosine_min": round(low, 5),
            "cosine_mean": round(mean, 5),
            **footprint(candidate.description),
        }
    pairs = load_sts("test", home)
    texts = list(dict.fromkeys(p.sentence1 for p in pairs))[:512]
    for name, figures in speed(candidates, texts, rounds, progress).items():
        results[name].update(figures)
    base_rate = results["base"]["throughput_b32"]
    for figures in results.values():
        figures["speedup_b32"] = round(figures["throughput_b32"] / base_rate, 3)
        figures["speedup_b1"] = round(figures["throughput_b1"] / results["base"]["throughput_b1"], 3)
    return results
