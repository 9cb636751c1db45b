"""Normalisation, Matryoshka cut, softmax and label ranking."""

from __future__ import annotations

import numpy as np
import pytest

from models.runtime.postprocess import finish_embeddings, rank_labels, softmax

pytestmark = pytest.mark.unit


def test_cut_happens_before_normalising() -> None:
    rows = np.array([[3.0, 4.0, 100.0]], dtype=np.float32)
    np.testing.assert_allclose(finish_embeddings(rows, True, 2), [[0.6, 0.8]])
    np.testing.assert_allclose(finish_embeddings(rows, False, None), rows)


def test_zero_vector_does_not_divide_by_zero() -> None:
    assert np.isfinite(finish_embeddings(np.zeros((1, 4), np.float32), True, None)).all()


def test_one_row_is_normalised_as_in_a_batch_and_the_input_is_left_alone() -> None:
    rows = np.random.default_rng(0).normal(size=(3, 384)).astype(np.float32)
    rows.flags.writeable = False  # a cached row is a read-only view of the cache's bytes
    together = finish_embeddings(rows, True, None)
    for index in range(3):
        alone = finish_embeddings(rows[index : index + 1], True, None)
        np.testing.assert_allclose(alone, together[index : index + 1], rtol=1e-6)
        assert abs(float(np.linalg.norm(alone)) - 1.0) < 1e-6
    np.testing.assert_array_equal(finish_embeddings(rows[:1], False, 8), rows[:1, :8])


def test_softmax_is_stable_and_sums_to_one() -> None:
    probs = softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    np.testing.assert_allclose(probs, [[0.5, 0.5], [0.25, 0.75]])


def test_rank_labels_orders_and_cuts() -> None:
    ranked = rank_labels(np.array([[0.1, 0.7, 0.2]]), ("a", "b", "c"), top_k=2)
    assert ranked == [[("b", 0.7), ("c", 0.2)]]
