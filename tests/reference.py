"""Independent reference computations with plain transformers (no bertserve code path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer


def reference_embeddings(folder: Path, texts: list[str], normalize: bool = True) -> np.ndarray:
    """Mean-pooled embeddings, one text at a time (no padding at all)."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()
    rows = []
    with torch.inference_mode():
        for text in texts:
            encoded = tokenizer(text, return_tensors="pt", truncation=True)
            hidden = model(**encoded).last_hidden_state[0]
            rows.append(hidden.mean(dim=0).numpy())
    out = np.stack(rows)
    if normalize:
        out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def reference_logits(folder: Path, texts: list[str]) -> np.ndarray:
    """Classifier logits, one text at a time."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    with torch.inference_mode():
        return np.stack(
            [
                model(**tokenizer(text, return_tensors="pt", truncation=True)).logits[0].numpy()
                for text in texts
            ]
        )


def reference_pair_logits(folder: Path, pairs: list[tuple[str, str]], max_length: int = 64) -> np.ndarray:
    """Classifier logits of text pairs (token types 0 then 1), cut longest-first, one pair at a time."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    with torch.inference_mode():
        return np.stack(
            [
                model(
                    **tokenizer(a, b, return_tensors="pt", truncation="longest_first", max_length=max_length)
                )
                .logits[0]
                .numpy()
                for a, b in pairs
            ]
        )
