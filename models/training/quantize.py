"""The ``quantize`` recipes: int8 ONNX for CPU, float16/bfloat16 weights for GPU.

int8: the runtime's measured int8 build (:mod:`models.runtime.int8`) calibrated on STS-B dev (never the
test split); the manifest records every matrix's measured sensitivity and which ones stayed float32.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from models.runtime.export import export_onnx
from models.runtime.folders import ONNX_FILE, ModelDescription, describe_model
from models.runtime.int8 import Int8Targets, build_int8
from models.runtime.structure import pruned_structure
from models.runtime.tokenization import TextTokenizer
from models.runtime.torch_backend import load_module
from models.training.data import load_sts
from models.training.errors import TrainingError
from models.training.loop import publishing
from models.training.variant import copy_model_files, save_torch_weights, write_manifest

logger = logging.getLogger(__name__)

CALIBRATION_TEXTS = 256


def calibration_texts(home: Path, count: int = CALIBRATION_TEXTS) -> list[str]:
    """Calibration sentences: STS-B dev (the test split is for evaluation only)."""
    texts = [text for pair in load_sts("dev", home) for text in (pair.sentence1, pair.sentence2)]
    return list(dict.fromkeys(texts))[:count]


def quantize_int8(
    base_path: Path,
    out: Path,
    home: Path,
    targets: Int8Targets | None = None,
    threads: int = 2,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Write an int8 ONNX variant of ``base_path`` to ``out``."""
    targets = targets or Int8Targets()
    base = describe_model(base_path)
    tokenizer = TextTokenizer.from_folder(base.path, base.max_input_tokens)
    with publishing(out, overwrite) as scratch:
        fp32 = export_onnx(base, scratch / "float32.onnx")
        texts = calibration_texts(home)
        report = build_int8(
            fp32, scratch / ONNX_FILE, tokenizer, texts, targets, base.task, threads, progress
        )
        fp32.unlink()
        if not report["targets_met"]:
            logger.warning(
                "int8 variant of %s misses the drift targets: %s", base.path, report["calibration"]
            )
        copy_model_files(base.path, scratch)
        settings = {"dtype": "int8", **targets.__dict__}
        return write_manifest(scratch, base, "quantize-int8", settings, quantization=report)


def quantize_dtype(base_path: Path, out: Path, dtype: str, overwrite: bool = False) -> dict[str, Any]:
    """Write a float16 or bfloat16 copy of ``base_path`` (for GPUs) to ``out``."""
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in dtypes:
        raise TrainingError(f"dtype must be one of {sorted(dtypes)}, got {dtype!r}")
    base: ModelDescription = describe_model(base_path)
    model = load_module(base, "cpu", torch.float32).to(dtypes[dtype])
    with publishing(out, overwrite) as scratch:
        copy_model_files(base.path, scratch)
        save_torch_weights(model, scratch)
        return write_manifest(
            scratch,
            base,
            f"quantize-{dtype}",
            {"dtype": dtype},
            structure=pruned_structure(model),
            dtype=dtype,
        )
