"""Run a backend over many texts: length-sorted batches, rows returned in the texts' order.

Every offline consumer of a backend (the int8 sensitivity search, evaluation, distillation targets, the
start-up drift check) needs the same thing: rows for a list of inputs, computed in batches of similar
length so that little padding is computed, and put back in input order. This is the one place that does it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from models.runtime.contract import EncoderBackend
from models.runtime.errors import ModelError
from models.runtime.tokenization import TextTokenizer, TokenizedText


def length_sorted_chunks(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of inputs with these token ``lengths`` in batches of at most ``batch_size``, shortest first."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def encoded_rows(
    backend: EncoderBackend,
    tokenizer: TextTokenizer,
    items: Sequence[TokenizedText],
    batch_size: int = 32,
    progress: str | None = None,
) -> np.ndarray:
    """The backend's float32 rows for already tokenized ``items``, in their order.

    ``progress``: a label for a progress bar over the batches (None: no bar).
    """
    if not items:
        raise ModelError("no inputs to run the model on")
    rows: np.ndarray | None = None
    chunks = length_sorted_chunks([item.tokens for item in items], batch_size)
    for chunk in tqdm(chunks, desc=progress, disable=progress is None, unit="batch"):
        out = backend.forward(tokenizer.collate([items[i] for i in chunk], backend.token_multiple))
        if rows is None:
            rows = np.empty((len(items), out.shape[-1]), dtype=np.float32)
        rows[chunk] = out
    assert rows is not None
    return rows


def text_rows(
    backend: EncoderBackend,
    tokenizer: TextTokenizer,
    texts: Sequence[str],
    batch_size: int = 32,
    progress: str | None = None,
) -> np.ndarray:
    """The backend's float32 rows for ``texts`` (truncated to the model's limit), in their order."""
    items = tokenizer.encode(list(texts), truncate=True)
    return encoded_rows(backend, tokenizer, items, batch_size, progress)
