"""Start-up refuses bad models with one clear line and a non-zero exit code."""

from __future__ import annotations

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
    assert result.returncode != 0
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("bertserve: cannot start: model 'bad'")
    assert "safetensors only" in line
