"""POST /classify and /predict against plain transformers on a tiny random classifier."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import CLASSIFIER_LABELS
from tests.reference import reference_logits

pytestmark = pytest.mark.integration

TEXTS = ["I loved this film.", "Dreadful, boring and far too long for what it has to say."]


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


async def test_scores_match_reference(client: httpx.AsyncClient, tiny_classifier: Path) -> None:
    response = await client.post("/classify", json={"inputs": TEXTS})
    assert response.status_code == 200
    body = response.json()
    expected = _softmax(reference_logits(tiny_classifier, TEXTS))
    for row, probs in zip(body, expected, strict=True):
        assert [item["score"] for item in row] == sorted((i["score"] for i in row), reverse=True)
        by_label = {item["label"]: item["score"] for item in row}
        assert set(by_label) == set(CLASSIFIER_LABELS)
        np.testing.assert_allclose([by_label[label] for label in CLASSIFIER_LABELS], probs, atol=1e-5)


async def test_raw_scores_and_top_k(client: httpx.AsyncClient, tiny_classifier: Path) -> None:
    response = await client.post("/classify", json={"inputs": TEXTS, "raw_scores": True, "top_k": 1})
    logits = reference_logits(tiny_classifier, TEXTS)
    for row, expected in zip(response.json(), logits, strict=True):
        assert len(row) == 1
        assert row[0]["label"] == CLASSIFIER_LABELS[int(expected.argmax())]
        assert row[0]["score"] == pytest.approx(float(expected.max()), abs=1e-4)


async def test_predict_flattens_a_single_string(client: httpx.AsyncClient) -> None:
    single = (await client.post("/predict", json={"inputs": TEXTS[0]})).json()
    nested = (await client.post("/classify", json={"inputs": TEXTS[0]})).json()
    assert isinstance(single[0], dict)
    assert single == nested[0]
    # TEI: a one-text sequence is still one input (flat); a batch of sequences nests.
    sequence = (await client.post("/predict", json={"inputs": [TEXTS[0]]})).json()
    assert sequence == single
    batch = (await client.post("/predict", json={"inputs": [[TEXTS[0]]]})).json()
    assert batch == nested
