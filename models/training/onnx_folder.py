"""ONNX-only copies of model folders, for a serving image without PyTorch: the float32 graph as
``model.onnx`` beside the config and tokenizer files, and no weights. The runtime serves such a folder
from its graph (like an int8 variant), with the same answers as the original folder on ONNX Runtime;
only its fingerprint differs (it names the graph, not the safetensors weights).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from models.runtime import builtins as defaults
from models.runtime.factory import cached_graph
from models.runtime.folders import ONNX_FILE, describe_model
from models.training.variant import copy_model_files


def write_onnx_folder(source: Path, out: Path, onnx_cache: Path, task: str | None = None) -> Path:
    """Write ``source``'s float32 graph (exported into ``onnx_cache`` when missing) and its non-weight
    files to ``out``; returns ``out``."""
    description = describe_model(source, task=task)  # type: ignore[arg-type]
    graph = cached_graph(description, onnx_cache)
    out.mkdir(parents=True, exist_ok=True)
    copy_model_files(description.path, out)
    shutil.copy2(graph, out / ONNX_FILE)
    return out


def write_builtin_onnx_folders(home: Path, out: Path) -> list[Path]:
    """ONNX-only folders of every built-in model (the trained ones built in ``home``), under ``out`` by
    their builtin names: what the serving image carries instead of their weights."""
    folders = [write_onnx_folder(defaults.minilm_path(), out / "all-minilm-l6-v2", home / "onnx")]
    for source in (defaults.CLASSIFIER, defaults.RERANKER):
        name = source.removeprefix(defaults.BUILTIN_PREFIX)
        folder = write_onnx_folder(
            defaults.resolve_builtin(source, home), out / name, home / "onnx", "classify"
        )
        folders.append(folder)
    return folders
