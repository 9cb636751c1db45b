"""Which of two backends runs served-like batches faster on this machine, measured at start-up.

bfloat16 wins or loses by the machine and the model: on one Zen 5 server OpenVINO bfloat16 ran
all-MiniLM-L6-v2 3x faster than ONNX Runtime float32, on another 1.6x; a pruned 3-layer student, whose
small matrices leave OpenVINO's per-shape preparation the larger part of each call, ran no faster than
float32 at served batch shapes, and 0.6x served. So ``dtype: auto`` times both before it chooses. The
batches are the built-in sample (:mod:`models.runtime.sample`) cut into the small, ragged batches a server
forms (sizes 1-12, every one a new shape), and the cost is process CPU time per input: what the cores
pay, whichever threads the runtime uses.

Also timed at start-up: from how many tokens a lone ONNX Runtime batch is faster on every thread than on
one stream's share (:func:`lone_min_tokens`). Float32 MiniLM wins on two threads from one sentence; its
int8 variant lost on 2 Zen 5 cores up to a few sentences (one sentence 1.0-1.08 ms against 1.13-1.22).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

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


#: Sample sentences per batch at which a lone batch is timed on every thread against one stream's share.
_LONE_SIZES = (1, 2, 4, 8)
#: How much faster every thread must be to be used: it keeps the other cores busy (or awake) too, and
#: start-up timings of a millisecond-long call move by several percent.
LONE_MARGIN = 1.1
#: Calls in a row on one session while timing it (see :func:`_median_seconds`).
_LONE_RUN = 5


def lone_min_tokens(
    backend: EncoderBackend,
    tokenizer: TextTokenizer,
    calls: int = 25,
    clock: Callable[[], float] = time.perf_counter,
) -> int:
    """The padded tokens from which a batch run alone is faster on every thread than on its stream's
    share by :data:`LONE_MARGIN` (for :attr:`OnnxBackend.lone_min_tokens`): batches of 1, 2, 4, 8 sample
    sentences, each timed ``calls`` times both ways, in alternating runs (median wall time: a lone batch
    is about latency). 0 when every thread wins from one sentence, as it does for float32 MiniLM on 2
    cores; past the largest batch when it never wins. ``clock``: seconds, monotonic."""
    tokens = 0
    for size in _LONE_SIZES:
        batch = tokenizer.collate(tokenizer.encode(list(SAMPLE_TEXTS[:size]), truncate=True))
        tokens = int(batch.input_ids.size)
        every_thread, own_share = _median_seconds(backend, batch, calls, clock)
        if every_thread * LONE_MARGIN < own_share:
            return 0 if size == 1 else tokens
    return tokens + 1


def _median_seconds(
    backend: EncoderBackend, batch: ModelInputs, calls: int, clock: Callable[[], float]
) -> tuple[float, float]:
    """Median wall seconds of ``batch`` run alone and not alone, ``calls`` times each, in alternating runs
    of :data:`_LONE_RUN` calls: a call right after a switch of session ran slower (timed call by call in
    turn, one int8 sentence looked 1.03x faster on every thread instead of 0.82-0.88x), and served lone
    batches seldom switch, so the median leaves that call out."""
    times: dict[bool, list[float]] = {True: [], False: []}
    for alone in (True, False):
        backend.forward(batch, alone=alone)  # a session's first call of a shape is slower
    for _ in range(max(1, calls // _LONE_RUN)):
        for alone in (True, False):
            for _ in range(_LONE_RUN):
                started = clock()
                backend.forward(batch, alone=alone)
                times[alone].append(clock() - started)
    return statistics.median(times[True]), statistics.median(times[False])
