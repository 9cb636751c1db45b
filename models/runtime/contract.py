"""The runtime contract: what the engine needs from a backend, and the names every layer shares.

A backend turns a padded batch into one float32 row per input: pooled sentence embeddings (before any
normalisation) for embed models, logits for classifiers. Post-processing (normalise, Matryoshka cut,
softmax) is shared by every backend and lives in :mod:`models.runtime.postprocess`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from models.runtime.tokenization import ModelInputs


class EncoderBackend(Protocol):
    """One forward pass on one padded batch, whatever runs it (PyTorch, ONNX Runtime...)."""

    @property
    def device(self) -> str:
        """Where the model runs (``cpu``, ``cuda:0``...)."""
        ...

    @property
    def dtype(self) -> str:
        """Weights dtype name."""
        ...

    @property
    def streams(self) -> int:
        """How many ``forward`` calls may run at once (the engine starts one batch worker for each)."""
        ...

    @property
    def lone_all_threads(self) -> bool:
        """Whether a batch run ``alone`` gets every thread, not its stream's share: the engine then starts
        no other batch until it ends (a second one would put more threads than cores to work)."""
        ...

    @property
    def token_multiple(self) -> int:
        """Batches are padded to a multiple of this many tokens (1: to the longest input). A runtime that
        builds kernels per input shape (OpenVINO) meets far fewer shapes that way."""
        ...

    def forward(self, batch: ModelInputs, alone: bool = False) -> np.ndarray:
        """Return float32 rows, one per input: pooled embeddings or logits. ``alone``: nothing else is
        running or about to (low load), so a backend that splits its threads between streams may give
        this one all of them."""
        ...
