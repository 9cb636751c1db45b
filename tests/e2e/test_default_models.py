"""The embedded default models, served by a real process: exact embeddings and real accuracy."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from benchmarks.eval_rerank import pair_spearman
from benchmarks.eval_sts import evaluate_sts
from models.runtime.builtins import classifier_path, minilm_path, reranker_path
from models.runtime.cpu import host_bf16_flag
from models.training.data import load_sts, sentiment_splits
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

#: The default reranker's STS-B test Spearman through /rerank, measured (benchmarks/RESULTS.md; the
#: scores blended with the embedder's cosine; the issue's goal is 0.85).
RERANKER_TEST_SPEARMAN = 0.8535


def _sts_sentences(server: Server, count: int) -> list[str]:
    seen: dict[str, None] = {}
    for pair in load_sts("test", server.home):
        seen.setdefault(pair.sentence1)
        seen.setdefault(pair.sentence2)
    return list(seen)[:count]


def test_embeddings_equal_sentence_transformers(server: Server) -> None:
    from sentence_transformers import SentenceTransformer

    sentences = _sts_sentences(server, 256)
    assert len(sentences) == 256
    served = np.concatenate(
        [
            np.array(
                httpx.post(f"{server.url}/embed", json={"inputs": sentences[i : i + 64]}, timeout=60).json()
            )
            for i in range(0, len(sentences), 64)
        ]
    )
    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(
        sentences, normalize_embeddings=True, batch_size=32
    )
    cosine = (served * reference).sum(axis=1)
    assert served.shape == (256, 384)
    assert cosine.min() >= 0.9999, f"worst cosine {cosine.min():.6f}"


def test_sts_spearman_through_http(server: Server) -> None:
    spearman = evaluate_sts(server.url, "test", server.home, model=None)
    assert spearman == pytest.approx(0.820, abs=0.003)


def test_classifier_heldout_accuracy(server: Server) -> None:
    metadata = json.loads((classifier_path(server.home) / "finetune.json").read_text())
    assert metadata["heldout_accuracy"] >= 0.80
    _, heldout = sentiment_splits(server.home)
    sample = heldout[:400]
    predictions: list[str] = []
    for i in range(0, len(sample), 100):
        response = httpx.post(
            f"{server.url}/classify", json={"inputs": [x.text for x in sample[i : i + 100]]}, timeout=60
        )
        assert response.status_code == 200
        predictions += [row[0]["label"] for row in response.json()]
    expected = ["positive" if x.label == 1 else "negative" for x in sample]
    accuracy = float(np.mean([p == e for p, e in zip(predictions, expected, strict=True)]))
    assert accuracy >= 0.80, f"held-out accuracy {accuracy:.3f}"


def test_info_reports_the_defaults(server: Server) -> None:
    info = httpx.get(f"{server.url}/info").json()
    assert [(m["name"], m["task"]) for m in info["models"]] == [
        ("all-MiniLM-L6-v2", "embed"),
        ("minilm-sentiment", "classify"),
        ("minilm-reranker", "classify"),
    ]
    assert info["models"][1]["labels"] == ["negative", "positive"]
    assert info["models"][2]["labels"] == ["relevance"]
    # dtype auto: bfloat16 on OpenVINO where this CPU has native bfloat16 and it timed faster at start-up,
    # float32 on ONNX Runtime elsewhere, with the reason.
    for model in info["models"]:
        slower = "bfloat16 is not faster here" in model["reason"]
        bf16 = host_bf16_flag() is not None and not slower
        expected = ("openvino", "bfloat16") if bf16 else ("onnx", "float32")
        assert (model["runtime"], model["dtype"]) == expected, model["reason"]
        assert model["reason"].startswith(f"dtype auto: {expected[1]} (")
        if bf16:
            assert "x float32's speed on served-like batches" in model["reason"]


def test_reranker_sts_spearman_through_rerank(server: Server) -> None:
    metadata = json.loads((reranker_path(server.home) / "finetune.json").read_text())
    assert metadata["heldout"] == "STS-B dev"
    pairs = load_sts("test", server.home)
    with httpx.Client(base_url=server.url, timeout=120) as client:
        spearman = pair_spearman(client, pairs, model="minilm-reranker")
    assert spearman >= RERANKER_TEST_SPEARMAN - 0.003, f"STS-B test Spearman {spearman:.4f}"
