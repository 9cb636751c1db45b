"""The serving install (`pip install bertserve`, no extras) pulls no training stack: walks the installed
packages' declared requirements from pyproject's dependencies, as pip would resolve them."""

from __future__ import annotations

import importlib.metadata as metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TRAINING_STACK = {"torch", "transformers", "sentence-transformers", "scipy", "scikit-learn", "sympy"}


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: list[str]) -> set[str]:
    """Every distribution ``requirements`` pull in, extras and environment markers applied."""
    found: set[str] = set()
    pending = [(Requirement(text), ("",)) for text in requirements]
    while pending:
        requirement, extras = pending.pop()
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in extras):
            continue
        key = _key(requirement.name)
        if key in found:
            continue
        found.add(key)
        wanted = ("", *requirement.extras)
        pending.extend((Requirement(text), wanted) for text in metadata.requires(requirement.name) or [])
    return found


def test_serving_dependencies_pull_no_training_stack() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    serving = closure(project["dependencies"])
    assert {"onnxruntime", "tokenizers", "fastapi", "uvicorn"} <= serving
    assert not serving & TRAINING_STACK, sorted(serving & TRAINING_STACK)
    with_torch = closure(project["optional-dependencies"]["torch"])
    assert {"torch", "transformers"} <= with_torch, "the torch extra is what training and CUDA install"
