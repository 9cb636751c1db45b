"""Which of two backends runs served-like batches faster on this machine, measured at start-up.

bfloat16 wins or loses by the machine and the model: on one Zen 5 server OpenVINO bfloat16 ran
all-MiniLM-L6-v2 3x faster than ONNX Runtime float32, on another 1.6x; a pruned 3-layer student, whose
small matrices leave OpenVINO's per-shape preparation the larger part of each call, ran no faster than
float32 at served batch shapes, and 0.6x served. So ``dtype: auto`` times both before it chooses. The
batches are the built-in sample (:mod:`models.runtime.sample`) cut into the small, ragged batches a server
forms (sizes 1-12, every one a new shape), and the cost is process CPU time per input: what the cores
pay, whichever threads the runtime uses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from models.runtime.contract import EncoderBackend
from models.runtime.sample import SAMPLE_TEXTS
from models.runtime.tokenization import ModelInputs, TextTokenizer

#: Batch sizes cycled over the sample, as a server under mixed load forms them.
_SIZES = (1, 6, 3, 12, 2, 8, 5, 10, 4)


def served_like_batches(
    tokenizer: TextTokenizer, texts: Sequence[str] = SAMPLE_TEXTS, multiple: int = 1
) -> list[ModelInputs]:
    """``texts`` as padded batches of the sizes in :data:`_SIZES`, in turn (the last may be smaller),
    padded to a ``multiple`` of tokens as the engine pads them for a backend."""
    batches: list[ModelInputs] = []
    start = 0
    while start < len(texts):
        size = _SIZES[len(batches) % len(_SIZES)]
        chunk = list(texts[start : start + size])
        batches.append(tokenizer.collate(tokenizer.encode(chunk, truncate=True), multiple))
        start += size
    return batches


def cpu_cost(backend: EncoderBackend, batches: Sequence[ModelInputs]) -> float:
    """Process CPU seconds per input for one pass over ``batches``."""
    inputs = sum(batch.input_ids.shape[0] for batch in batches)
    started = time.process_time()
    for batch in batches:
        backend.forward(batch)
    return (time.process_time() - started) / max(inputs, 1)


def speedup(
    candidate: EncoderBackend, reference: EncoderBackend, tokenizer: TextTokenizer, rounds: int = 3
) -> float:
    """How many times faster ``candidate`` runs served-like batches than ``reference`` (best of
    ``rounds`` alternating passes each, after one pass each to warm up). Each runs the batches padded
    as the engine pads them for it."""
    ours = served_like_batches(tokenizer, multiple=candidate.token_multiple)
    theirs = served_like_batches(tokenizer, multiple=reference.token_multiple)
    cpu_cost(candidate, ours)
    cpu_cost(reference, theirs)
    best = {"candidate": float("inf"), "reference": float("inf")}
    for _ in range(rounds):
        best["candidate"] = min(best["candidate"], cpu_cost(candidate, ours))
        best["reference"] = min(best["reference"], cpu_cost(reference, theirs))
    return best["reference"] / max(best["candidate"], 1e-12)
