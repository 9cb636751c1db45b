"""What drift compares: embeddings as they are, classifiers by their class probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from models.runtime.drift import compare
from models.runtime.postprocess import comparable, cosine_drift

pytestmark = pytest.mark.unit

# Two classifiers' logits for the same three inputs: the first input sits on the decision boundary.
REFERENCE = np.array([[0.02, -0.02], [3.0, -1.0], [-2.0, 2.5]], dtype=np.float32)
NUDGED = np.array([[-0.01, 0.01], [2.9, -1.0], [-2.1, 2.5]], dtype=np.float32)


def test_logit_cosine_is_meaningless_near_the_boundary() -> None:
    low, _ = cosine_drift(REFERENCE, NUDGED)
    assert low < -0.9  # a change of 0.03 in the logits "reverses" the vector


def test_classifiers_compare_class_probabilities() -> None:
    probabilities = comparable(REFERENCE, "classify")
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert probabilities[1, 0] == pytest.approx(1 / (1 + np.exp(-4.0)), rel=1e-6)
    drift = compare(REFERENCE, NUDGED, "base", task="classify")
    assert drift.min_cosine > 0.99
    assert drift.samples == 3


def test_embeddings_compare_as_they_are() -> None:
    assert comparable(REFERENCE, "embed") is REFERENCE
    low, mean = cosine_drift(REFERENCE, NUDGED)
    drift = compare(REFERENCE, NUDGED, "base")
    assert (drift.min_cosine, drift.mean_cosine) == (round(low, 6), round(mean, 6))
