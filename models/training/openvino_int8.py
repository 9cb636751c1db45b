"""Static int8 for OpenVINO: NNCF post-training quantization, calibrated on training data, with the
guardrail of every int8 recipe.

NNCF inserts quantize nodes (OpenVINO ``FakeQuantize``) on the weights and activations of the exported
graph, with ranges measured on calibration sentences: STS-B train for embedders, the sentiment train split
for classifiers (never an evaluation split). OpenVINO runs the result on the CPU's VNNI int8 kernels,
activations included (ONNX Runtime's dynamic int8 quantizes activations per batch at run time instead).
Attention's own products (queries times keys, weights times values) stay in the precision of the rest of
the graph (bfloat16 where the CPU has it): in int8 their inputs pass through int8 transposes that cost
more than the products save (measured on a Zen 5: 62 against 70 ms at batch 32, 2.7 against 3.7 ms at
batch 1), and the rows drift less (MiniLM's mean cosine to float32: 0.99781 -> 0.99804).
The guardrail (:func:`models.runtime.int8.keep_float_search`) then measures the drift against float32 on
other training sentences and, while it misses the targets, removes the quantize nodes of the most
sensitive matrix products, one at a time. The variant folder holds the graph as OpenVINO IR
(``openvino_model.xml`` and ``.bin``); the service serves it with runtime ``openvino`` (or ``auto``).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime.errors import ModelLoadError
from models.runtime.export import export_onnx
from models.runtime.folders import OPENVINO_FILE, describe_model
from models.runtime.inference import length_sorted_chunks, text_rows
from models.runtime.int8 import Int8Targets, keep_float_search
from models.runtime.onnx import OnnxBackend
from models.runtime.openvino import OpenVinoBackend
from models.runtime.postprocess import comparable, cosine_drift
from models.runtime.tokenization import TextTokenizer
from models.training.data import load_sts, sentiment_splits
from models.training.loop import publishing
from models.training.variant import copy_model_files, write_manifest

logger = logging.getLogger(__name__)

CALIBRATION_TEXTS = 300
#: Nodes between a quantize node and the matrix product it feeds (weights are often transposed).
_PASS_THROUGH = {"Convert", "Transpose", "Reshape"}
#: Nodes between a weight constant and its matrix product in a quantized graph (quantize, dequantize).
_WEIGHT_PATH = _PASS_THROUGH | {"FakeQuantize", "Multiply", "Subtract"}


def training_texts(task: str, home: Path, count: int = CALIBRATION_TEXTS, seed: int = 0) -> list[str]:
    """Sentences from the training splits only (STS-B train, or the sentiment train split), a seeded
    random sample: the files are grouped by genre (STS-B train opens with short captions), and ranges
    calibrated on one genre clip the others."""
    if task == "classify":
        train, _ = sentiment_splits(home)
        texts = [example.text for example in train]
    else:
        texts = [text for pair in load_sts("train", home) for text in (pair.sentence1, pair.sentence2)]
    unique = list(dict.fromkeys(texts))
    random.Random(seed).shuffle(unique)
    return unique[:count]


def calibration_feeds(model: Any, tokenizer: TextTokenizer, texts: list[str]) -> list[dict[str, np.ndarray]]:
    """Length-sorted batches of 8 as the graph's input dictionaries (what NNCF feeds the model)."""
    names = [port.get_any_name() for port in model.inputs]
    items = tokenizer.encode(texts, truncate=True)
    feeds = []
    for chunk in length_sorted_chunks([item.tokens for item in items], 8):
        batch = tokenizer.collate([items[i] for i in chunk])
        arrays = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids,
        }
        feeds.append({name: arrays[name] for name in names})
    return feeds


def _source(value: Any, through: set[str] = _PASS_THROUGH) -> Any:
    """The node that feeds ``value``, seen through the node types in ``through``."""
    source = value.get_node()
    while source.get_type_name() in through:
        source = source.input_value(0).get_node()
    return source


def _is_weight(value: Any) -> bool:
    """Whether ``value`` is a constant: directly, or through quantize and dequantize nodes."""
    return bool(_source(value, _WEIGHT_PATH).get_type_name() == "Constant")


def attention_products(model: Any) -> list[str]:
    """Names of the matrix products of two activations (attention's scores and context): no weight."""
    return [
        node.get_friendly_name()
        for node in model.get_ordered_ops()
        if node.get_type_name() == "MatMul" and not any(_is_weight(value) for value in node.input_values())
    ]


def quantizer_groups(model: Any) -> dict[str, list[str]]:
    """Matrix product name -> names of the quantize nodes on its inputs."""
    groups: dict[str, list[str]] = {}
    for node in model.get_ordered_ops():
        if node.get_type_name() != "MatMul":
            continue
        sources = [_source(value) for value in node.input_values()]
        found = [source.get_friendly_name() for source in sources if source.get_type_name() == "FakeQuantize"]
        if found:
            groups[node.get_friendly_name()] = found
    return groups


def without_quantizers(model: Any, names: set[str]) -> Any:
    """A copy of ``model`` with the quantize nodes in ``names`` bypassed (those values stay float)."""
    trial = model.clone()
    for node in trial.get_ordered_ops():
        if node.get_type_name() == "FakeQuantize" and node.get_friendly_name() in names:
            node.output(0).replace(node.input_value(0))
    trial.validate_nodes_and_infer_types()
    return trial


def static_int8(
    fp32: Path,
    tokenizer: TextTokenizer,
    texts: list[str],
    checks: list[str],
    targets: Int8Targets,
    task: str,
    threads: int,
    progress: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """NNCF-quantize the ONNX graph ``fp32`` calibrated on ``texts``; the guardrail measures the drift on
    ``checks`` (other training sentences: ranges that only fit the calibration sentences show). Returns
    the guarded int8 ``openvino.Model`` and its report."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32))
    feeds = calibration_feeds(model, tokenizer, texts)
    attention = attention_products(model)
    quantized = nncf.quantize(
        model,
        nncf.Dataset(feeds),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(feeds),
        ignored_scope=nncf.IgnoredScope(names=attention),
    )
    reference = comparable(text_rows(OnnxBackend(fp32, threads), tokenizer, checks), task)
    groups = quantizer_groups(quantized)

    def bypassed(keep: list[str]) -> set[str]:
        return {fq for name in keep for fq in groups[name]}

    not_compiled = [0]  # trials this CPU could not compile

    def drift_with(keep: list[str]) -> tuple[float, float]:
        try:
            trial = OpenVinoBackend(without_quantizers(quantized, bypassed(keep)), threads, "int8")
        except ModelLoadError:
            # OpenVINO's CPU plugin lacks an int8 kernel for some partly quantized graphs on some CPUs
            # (seen: AVX-512 without VNNI, on a tiny classifier). A trial this CPU cannot run counts as
            # the worst drift, so that the guardrail keeps float what it cannot measure.
            not_compiled[0] += 1
            return -1.0, -1.0
        return cosine_drift(reference, comparable(text_rows(trial, tokenizer, checks), task))

    keep, sensitivity, drift = keep_float_search(list(groups), drift_with, targets, progress)
    report = {
        "method": "NNCF static int8 (OpenVINO), weights and activations, calibrated ranges",
        "runtime": "openvino",
        "matmuls": len(groups),
        "attention_products_float": len(attention),
        "kept_float": keep,
        "sensitivity": sensitivity,
        "calibration": {
            "texts": len(texts),
            "checked_on": len(checks),
            "source": "sentiment train split" if task == "classify" else "STS-B train",
            "min_cosine": round(drift[0], 6),
            "mean_cosine": round(drift[1], 6),
        },
        "targets_met": targets.met(drift),
        "trials_not_compiled": not_compiled[0],
    }
    return without_quantizers(quantized, bypassed(keep)), report


def quantize_openvino_int8(
    base_path: Path,
    out: Path,
    home: Path,
    targets: Int8Targets | None = None,
    threads: int = 2,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Write a static int8 OpenVINO variant of ``base_path`` to ``out``."""
    import openvino as ov

    targets = targets or Int8Targets()
    base = describe_model(base_path)
    tokenizer = TextTokenizer.from_folder(base.path, base.max_input_tokens)
    with publishing(out, overwrite) as scratch:
        fp32 = export_onnx(base, scratch / "float32.onnx")
        texts = training_texts(base.task, home, 2 * CALIBRATION_TEXTS)
        calibration, checks = texts[:CALIBRATION_TEXTS], texts[CALIBRATION_TEXTS:]
        model, report = static_int8(
            fp32, tokenizer, calibration, checks, targets, base.task, threads, progress
        )
        # Float weights stay float32 (no float16 compression): kept matrices are exactly the base's.
        ov.save_model(model, str(scratch / OPENVINO_FILE), compress_to_fp16=False)
        fp32.unlink()
        if not report["targets_met"]:
            logger.warning("int8 variant of %s misses its targets: %s", base.path, report["calibration"])
        copy_model_files(base.path, scratch)
        settings = {"dtype": "int8", "runtime": "openvino", **targets.__dict__}
        return write_manifest(scratch, base, "quantize-int8-openvino", settings, quantization=report)
