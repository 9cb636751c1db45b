"""Cache keys and values.

The cache stores a model's raw output row for one text (pooled embedding before normalising, or logits),
so one entry serves every request option applied after the model (normalize, dimensions, raw_scores,
top_k). The key covers everything that changes that row: the model's fingerprint (weights and variant),
runtime and dtype, the task, pooling, token limit and truncation direction, and the text itself.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.runtime.types import ModelInput

_SCHEMA = b"bertserve-row-v1"


@dataclass(frozen=True)
class RowScope:
    """Everything but the text that determines a model's output row."""

    fingerprint: str
    runtime: str
    dtype: str
    task: str
    pooling: str
    max_tokens: int

    def key(self, text: ModelInput, direction: str, mode: str = "") -> str:
        """Hex sha256 of the scope, the truncation direction, the text (both texts of a pair) and the
        long-input mode when it is not the default (length-prefixed fields: no two inputs collide)."""
        prefix = self._prefixes.get(direction)
        if prefix is None:
            prefix = self._prefixes[direction] = _hashed(
                hashlib.sha256(_SCHEMA),
                (
                    self.fingerprint,
                    self.runtime,
                    self.dtype,
                    self.task,
                    self.pooling,
                    str(self.max_tokens),
                    direction,
                ),
            )
        # The scope's fields are hashed once per direction; each text continues a copy of that state.
        texts = (text,) if isinstance(text, str) else ("\0pair", *text)
        return _hashed(prefix.copy(), (*texts, *((f"\0{mode}",) if mode else ()))).hexdigest()

    @functools.cached_property
    def _prefixes(self) -> dict[str, Any]:
        return {}


def _hashed(digest: Any, fields: tuple[str, ...]) -> Any:
    for field in fields:
        data = field.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest


@dataclass(frozen=True)
class CachedRow:
    """A model row and the tokens its text cost (kept so usage counts stay exact on hits)."""

    row: np.ndarray
    tokens: int


def encode_row(entry: CachedRow, dtype: str) -> bytes:
    """4-byte token count, then the row as little-endian float32 (or float16, half the memory)."""
    values = np.asarray(entry.row, dtype="<f2" if dtype == "float16" else "<f4")
    return entry.tokens.to_bytes(4, "little") + values.tobytes()


def decode_row(data: bytes, dtype: str) -> CachedRow:
    """The entry stored by :func:`encode_row`; a float32 row is a read-only view of ``data`` (every
    caller copies what it changes: normalising, cutting dimensions, stacking)."""
    values = np.frombuffer(data, dtype="<f2" if dtype == "float16" else "<f4", offset=4)
    row = values if values.dtype == np.float32 else values.astype(np.float32)
    return CachedRow(row, int.from_bytes(data[:4], "little"))
