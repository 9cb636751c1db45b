"""What the server answers for the e2e sample, saved as ``.npy``, to prove a refactoring changed no bit.

Runs the app in process (lifespan, default models, ONNX Runtime on CPU, cache off) with the code of any
revision on ``PYTHONPATH``. It embeds the 256 STS-B test sentences of ``tests/e2e`` and classifies them,
then writes ``embeddings.npy``, ``scores.npy`` (softmax, in label order) and ``labels.npy`` (top label).
Comparing two such folders checks exact equality (``np.array_equal``), not closeness.

    git worktree add /tmp/pre c58ceb2
    cd /tmp && PYTHONPATH=/tmp/pre python /path/to/tools/served_outputs.py save /tmp/out-pre
    cd /tmp && PYTHONPATH=/path/to/branch python /path/to/tools/served_outputs.py save /tmp/out-new
    python /path/to/tools/served_outputs.py compare /tmp/out-pre /tmp/out-new
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_SIZE = 256
BATCH = 64
FILES = ("embeddings.npy", "scores.npy", "labels.npy")


def sample_sentences(home: Path) -> list[str]:
    """The e2e sample: the first 256 distinct STS-B test sentences (as tests/e2e takes them)."""
    try:
        data: Any = importlib.import_module("models.training.data")
    except ImportError:  # a revision before models/ was split into runtime and training
        data = importlib.import_module("models.data")
    seen: dict[str, None] = {}
    for pair in data.load_sts("test", home):
        seen.setdefault(pair.sentence1)
        seen.setdefault(pair.sentence2)
    return list(seen)[:SAMPLE_SIZE]


def served(out: Path) -> None:
    """Serve the default models in process and save their answers for the sample into ``out``."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    settings = Settings(cache="none")
    sentences = sample_sentences(settings.home)
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 300
        while client.get("/ready").status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit("models not ready after 300 s")
            time.sleep(0.2)
        embeddings, scores, labels = [], [], []
        for start in range(0, len(sentences), BATCH):
            chunk = sentences[start : start + BATCH]
            embeddings.append(
                np.array(client.post("/embed", json={"inputs": chunk}).json(), dtype=np.float32)
            )
            for ranked in client.post("/classify", json={"inputs": chunk}).json():
                labels.append(ranked[0]["label"])
                scores.append([item["score"] for item in sorted(ranked, key=lambda item: item["label"])])
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / FILES[0], np.concatenate(embeddings))
    np.save(out / FILES[1], np.array(scores, dtype=np.float64))
    np.save(out / FILES[2], np.array(labels))
    print(f"{len(sentences)} sentences: {', '.join(FILES)} in {out}")


def compare(first: Path, second: Path) -> int:
    """Print whether each saved array is bit-identical in both folders; 1 if any is not."""
    different = 0
    for name in FILES:
        a, b = np.load(first / name), np.load(second / name)
        same = a.shape == b.shape and bool(np.array_equal(a, b))
        different += not same
        print(f"{name:16} shape {a.shape}  {'identical' if same else 'DIFFERENT'}")
    return 1 if different else 0


def main(argv: list[str]) -> int:
    """``save OUT`` or ``compare A B``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("save").add_argument("out", type=Path)
    both = commands.add_parser("compare")
    both.add_argument("first", type=Path)
    both.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    if args.command == "save":
        served(args.out)
        return 0
    return compare(args.first, args.second)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
