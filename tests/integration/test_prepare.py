"""``bertserve models prepare``: every configured model resolved, built and exported into the home."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models.runtime import builtins as defaults
from service.cli import main

pytestmark = pytest.mark.integration


def test_prepare_exports_every_model(
    tiny_embedder: Path, tiny_classifier: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    # A builtin classifier already built in the home is resolved there, not trained again.
    shutil.copytree(tiny_classifier, defaults.classifier_path(home))
    code = main(
        [
            "models",
            "prepare",
            "--home",
            str(home),
            "--threads",
            "1",
            "--model",
            f"embed={tiny_embedder},runtime=onnx",
            "--model",
            "sentiment=builtin:minilm-sentiment,runtime=onnx",
        ]
    )
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["model"] for line in lines] == ["embed", "sentiment"]
    assert lines[1]["path"] == str(defaults.classifier_path(home))
    assert all(line["runtime"] == "onnx" for line in lines)
    exported = sorted(path.name for path in (home / "onnx").rglob("*.onnx"))
    assert len(exported) == 2, exported


def test_prepare_fails_on_a_bad_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["models", "prepare", "--home", str(tmp_path), "--model", f"bad={tmp_path / 'missing'}"])
    assert code == 1
    assert "'bad'" in capsys.readouterr().err
