"""The serving path needs no training stack: a server whose Python refuses to import PyTorch,
transformers and models.training loads the pre-exported graphs from its data directory, answers /embed and
/classify exactly as the full install does, and checks an int8 model's drift against the float32 graph."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import Server, start_server, stop_server, wait_ready

pytestmark = pytest.mark.e2e

#: What the slim serving image does not carry.
BLOCKED = ("torch", "transformers", "sentence_transformers", "models.training")

#: ``python -c`` program: a meta-path finder that refuses BLOCKED, then ``bertserve`` with the arguments.
LAUNCHER = f"""
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in {BLOCKED!r}):
            raise ModuleNotFoundError(f"{{name}} is blocked: not in the serving image")
        return None

sys.meta_path.insert(0, Refuse())
from service.cli import main
code = main(["serve", *sys.argv[1:]])
leaked = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in {BLOCKED!r}))
assert not leaked, leaked
sys.exit(code)
"""

MODELS = [
    *["--model", "all-MiniLM-L6-v2=builtin:all-minilm-l6-v2"],
    *["--model", "minilm-sentiment=builtin:minilm-sentiment,task=classify"],
    *["--model", "minilm-int8=builtin:all-minilm-l6-v2,quantize=int8,min_cosine=0.9"],
]
TEXTS = ["The serving image has no PyTorch.", "What a wonderful, moving film.", "Dull and far too long."]


def _prepare(home: Path) -> None:
    """Build and export the models where the full stack is installed (what the image's build stage does)."""
    command = [sys.executable, "-m", "service", "models", "prepare", *MODELS]
    done = subprocess.run(
        command,
        env={**os.environ, "BERTSERVE_HOME": str(home), "HF_HUB_OFFLINE": "1"},
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _answers(server: Server) -> tuple[np.ndarray, list[str]]:
    embedded = httpx.post(f"{server.url}/embed", json={"inputs": TEXTS}, timeout=30)
    classified = httpx.post(f"{server.url}/classify", json={"inputs": TEXTS}, timeout=30)
    assert (embedded.status_code, classified.status_code) == (200, 200)
    vectors = np.array(embedded.json())
    labels = [ranked[0]["label"] for ranked in classified.json()]
    return vectors, labels


def test_serves_without_torch_transformers_or_training_code(
    server: Server, home: Path, tmp_path: Path
) -> None:
    _prepare(home)
    started = time.monotonic()
    slim = start_server(MODELS, home, tmp_path / "slim.log", launcher=[sys.executable, "-c", LAUNCHER])
    try:
        wait_ready(slim, 120)
        ready_s = time.monotonic() - started
        vectors, labels = _answers(slim)
        full_vectors, full_labels = _answers(server)
        np.testing.assert_allclose(vectors, full_vectors, atol=1e-5)
        assert labels == full_labels
        info = {m["name"]: m for m in httpx.get(f"{slim.url}/info", timeout=10).json()["models"]}
        # dtype auto may pick OpenVINO bfloat16 (no PyTorch needed either); load-time int8 is ONNX Runtime.
        assert {m["runtime"] for m in info.values()} <= {"onnx", "openvino"}
        assert info["minilm-int8"]["runtime"] == "onnx"
        drift = info["minilm-int8"]["drift"]
        assert drift["reference"] == "float32"
        assert drift["min_cosine"] >= 0.9
        assert ready_s < 60, f"ready {ready_s:.0f} s after start"
    finally:
        stop_server(slim)
    # The launcher asserts at exit that no blocked module was imported (its exit status says so).
    assert slim.process.returncode in (0, -15), slim.log.read_text()[-3000:]
