"""Variant folders: the model files plus ``variant.json`` (base, recipe, settings, eval figures).

A variant folder is a model folder: the tokenizer, config and pooling files of its base, its own weights
(safetensors, or ``model.onnx`` for an int8 graph) and ``variant.json``. The service loads it like any
model; ``variant.json`` tells it the base (for the drift check at start-up) and any pruned structure.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from models.runtime.folders import ONNX_FILE, ModelDescription, read_json
from models.runtime.structure import LayerShape, structure_to_json

VARIANT_FILE = "variant.json"
FORMAT_VERSION = 1
#: Files of a model folder that are weights (never copied from the base into a variant).
_WEIGHT_NAMES = {"model.safetensors", "model.safetensors.index.json", ONNX_FILE, VARIANT_FILE}
_WEIGHT_SUFFIXES = (".bin", ".h5", ".onnx", ".onnx_data", ".msgpack", ".ot")


def copy_model_files(source: Path, target: Path) -> None:
    """Copy everything but the weights (tokenizer, config, pooling...) from ``source`` to ``target``."""
    for item in source.iterdir():
        if item.name in _WEIGHT_NAMES or item.name.endswith(_WEIGHT_SUFFIXES) or item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, target / item.name, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target / item.name)


def base_entry(base: ModelDescription) -> dict[str, Any]:
    """How ``variant.json`` names the base model."""
    entry: dict[str, Any] = {"path": str(base.path), "fingerprint": base.fingerprint}
    if base.variant:
        entry["recipe"] = base.variant.get("recipe")
    return entry


def write_manifest(
    folder: Path,
    base: ModelDescription,
    recipe: str,
    settings: dict[str, Any],
    structure: list[LayerShape] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Write ``variant.json`` into ``folder`` and return it."""
    manifest: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "recipe": recipe,
        "base": base_entry(base),
        "task": base.task,
        "settings": settings,
        **extra,
    }
    if structure is not None:
        manifest["structure"] = structure_to_json(structure)
    (folder / VARIANT_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    """The ``variant.json`` of ``folder``."""
    return read_json(folder / VARIANT_FILE)


def record_eval(folder: Path, figures: dict[str, Any]) -> None:
    """Store eval figures in ``variant.json`` (they do not change the variant's fingerprint)."""
    manifest = read_manifest(folder)
    manifest["eval"] = figures
    (folder / VARIANT_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def save_torch_weights(model: Any, folder: Path) -> None:
    """Save ``model``'s config and weights (safetensors) into ``folder``."""
    from safetensors.torch import save_file

    model.config.save_pretrained(str(folder))
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
