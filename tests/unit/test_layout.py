"""The layout rules the tree must keep: no import cycle (imports inside functions count), and every test
module marked with exactly one level (``-m unit`` or ``-m integration`` would silently skip it otherwise)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import TEST_LEVELS
from tools.import_cycles import cycles, import_graph

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_service_and_models_have_no_import_cycle() -> None:
    graph = import_graph(ROOT)
    assert "service.engine.loader" in graph
    assert "models.training.builtins" in graph["service.engine.loader"]  # a lazy import is an edge
    assert cycles(graph) == []


def test_the_scan_sees_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    package = tmp_path / "models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from models.b import helper\n")
    (package / "b.py").write_text("def helper():\n    from models import c\n")
    (package / "c.py").write_text("from . import a\n")
    (package / "d.py").write_text("import models.a\n")
    assert cycles(import_graph(tmp_path)) == [["models.a", "models.b", "models.c"]]


def _module_levels(path: Path) -> set[str]:
    levels: set[str] = set()
    for node in ast.parse(path.read_text("utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            marks = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            levels |= {m.attr for m in marks if isinstance(m, ast.Attribute)} & set(TEST_LEVELS)
    return levels


def test_every_test_module_has_exactly_one_level_marker() -> None:
    modules = sorted((ROOT / "tests").rglob("test_*.py"))
    assert len(modules) > 20
    unmarked = [str(p.relative_to(ROOT)) for p in modules if len(_module_levels(p)) != 1]
    assert unmarked == [], "give each a module-level pytestmark = pytest.mark.unit|integration|e2e"
