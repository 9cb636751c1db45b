"""Domain errors raised by the model side of bertserve (never by FastAPI code).

The offline pipeline adds its own subclasses of :class:`ModelError` in :mod:`models.training.errors`.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base class for every error raised by the ``models`` package."""


class ModelLoadError(ModelError):
    """A model or tokenizer folder is missing, incomplete or cannot be loaded."""


class InputTooLongError(ModelError):
    """An input has more tokens than the model accepts and truncation was not allowed."""

    def __init__(self, index: int, tokens: int, limit: int) -> None:
        super().__init__(
            f"input {index} has {tokens} tokens, more than the model's limit of {limit}; "
            "shorten it or send truncate: true"
        )
        self.index = index
        self.tokens = tokens
        self.limit = limit


class DeviceOutOfMemoryError(ModelError):
    """A batch did not fit in the device's memory. The model is unharmed: the batch's requests fail
    (503, retryable) and the next batch runs as usual."""
