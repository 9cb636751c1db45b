"""Start-up refuses bad models with one clear line and a non-zero exit code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def _serve(model: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BERTSERVE_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "service", "--port", "0", "--model", model],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_hub_id_offline(tmp_path: Path) -> None:
    result = _serve("m=sentence-transformers/all-mpnet-base-v2", tmp_path)
    assert result.returncode != 0
    assert "model 'm'" in result.stderr
    assert "could not be downloaded (offline or no network?)" in result.stderr


def test_pickle_only_folder(tiny_embedder: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_embedder, tmp_path / "pickled"))
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    result = _serve(f"bad={folder}", tmp_path)
    line = _last_line(result)
    assert line.startswith("bertserve: cannot start: model 'bad'")
    assert "safetensors only" in line


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, "no message on stderr"
    return lines[-1]


def test_missing_folder(tmp_path: Path) -> None:
    line = _last_line(_serve(f"gone={tmp_path / 'no-such-model'}", tmp_path))
    assert line.startswith("bertserve: cannot start: model 'gone'")
    assert "no-such-model' does not exist" in line


def test_corrupt_safetensors(tiny_embedder: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_embedder, tmp_path / "truncated"))
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    line = _last_line(_serve(f"cut={folder}", tmp_path))
    assert line.startswith("bertserve: cannot start: model 'cut'")
    assert f"{weights}: truncated: tensor" in line


def test_remote_code_config(tiny_embedder: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_embedder, tmp_path / "custom"))
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    line = _last_line(_serve(f"custom={folder}", tmp_path))
    assert line.startswith("bertserve: cannot start: model 'custom'")
    assert "config.json: declares auto_map (custom model code)" in line
