"""Post-processing of backend rows, shared by every runtime."""

from __future__ import annotations

import numpy as np


def finish_embeddings(rows: np.ndarray, normalize: bool, dimensions: int | None) -> np.ndarray:
    """Cut to ``dimensions`` (Matryoshka-style, before normalising) and L2-normalise if asked."""
    out = rows[:, :dimensions] if dimensions is not None else rows
    out = out.astype(np.float32, copy=True)
    if normalize:
        # One path for any batch size: squares summed along the row cost less per call than einsum's
        # parsing (8.5 against 11.5 us for one row, 21 against 23 us for 32: timeit, RESULTS.md).
        out /= np.maximum(np.sqrt((out * out).sum(axis=1, keepdims=True)), 1e-12)
    return out


def pool_windows(rows: np.ndarray, owners: list[int], weights: list[int], count: int) -> np.ndarray:
    """Per text, the mean of its windows' rows weighted by their tokens (a long input embedded in
    chunks; normalise afterwards)."""
    weight = np.asarray(weights, dtype=np.float32)
    out = np.zeros((count, rows.shape[1]), dtype=np.float32)
    total = np.zeros(count, dtype=np.float32)
    np.add.at(out, owners, rows * weight[:, None])
    np.add.at(total, owners, weight)
    return out / total[:, None]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function, stable for large logits of either sign."""
    return np.exp(-np.logaddexp(0.0, -logits)).astype(np.float32)


def rank_labels(
    scores: np.ndarray, labels: tuple[str, ...], top_k: int | None
) -> list[list[tuple[str, float]]]:
    """Per row, ``(label, score)`` pairs highest first, cut to ``top_k``."""
    order = np.argsort(-scores, axis=1, kind="stable")
    limit = top_k if top_k is not None else scores.shape[1]
    return [[(labels[j], float(scores[i, j])) for j in order[i, :limit]] for i in range(scores.shape[0])]


def comparable(rows: np.ndarray, task: str) -> np.ndarray:
    """What drift compares: embeddings as they are, a classifier's logits as class probabilities.

    The logits of a two-class model near its decision boundary are short vectors that can point
    anywhere (cosine -0.7 for a change of a few hundredths), so their cosine says nothing about the
    predictions; the cosine of the probability vectors does. A single-logit model (a reranker's
    relevance) has no softmax worth comparing (always 1): its sigmoid probability is, as ``[p, 1 - p]``.
    """
    if task != "classify":
        return rows
    if rows.shape[1] == 1:
        probability = 1 / (1 + np.exp(-rows.astype(np.float64)))
        return np.concatenate([probability, 1 - probability], axis=1)
    return softmax(rows)


def cosine_drift(reference: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
    """Min and mean cosine similarity between matching rows."""
    dots = (reference * rows).sum(axis=1)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(rows, axis=1)
    cosine = dots / np.maximum(norms, 1e-12)
    return float(cosine.min()), float(cosine.mean())
