"""Fast tokenization with exact token counts and per-request truncation direction.

Inputs are first encoded without truncation, so that the true token count is known (an over-long input
with ``truncate: false`` is refused with its count and the limit); only inputs over the limit are encoded
again by a truncating copy of the tokenizer, which keeps the special tokens in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from models.runtime.errors import InputTooLongError, ModelLoadError
from models.runtime.types import Direction


@dataclass(frozen=True)
class TokenizedText:
    """One input ready for the model."""

    ids: list[int]
    type_ids: list[int]
    original_tokens: int

    @property
    def tokens(self) -> int:
        """Tokens the model will see (after truncation)."""
        return len(self.ids)

    @property
    def truncated(self) -> bool:
        """Whether the input was cut to fit the model."""
        return self.original_tokens > len(self.ids)


@dataclass(frozen=True)
class ModelInputs:
    """A padded batch: arrays of shape (batch, longest)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray


class TextTokenizer:
    """Thread-safe tokenizer for one model (the Rust tokenizer releases the GIL while encoding)."""

    def __init__(self, tokenizer: Tokenizer, max_tokens: int, pad_id: int) -> None:
        self.max_tokens = max_tokens
        self.pad_id = pad_id
        self._full = _clone(tokenizer)
        self._full.no_truncation()
        self._full.no_padding()
        self._cut = {side: _clone(self._full) for side in ("right", "left")}
        for side, cut in self._cut.items():
            cut.enable_truncation(max_length=max_tokens, direction=side)

    @classmethod
    def from_folder(cls, path: Path, max_tokens: int) -> TextTokenizer:
        """Load the fast tokenizer of a model folder (tokenizer.json, or built from vocab.txt)."""
        tokenizer = _load_backend(path)
        pad = tokenizer.token_to_id("[PAD]")
        if pad is None:
            pad = tokenizer.token_to_id("<pad>")
        return cls(tokenizer, max_tokens, pad if pad is not None else 0)

    def encode(self, texts: list[str], truncate: bool, direction: Direction = "right") -> list[TokenizedText]:
        """Encode ``texts``; raise :class:`InputTooLongError` for an over-long input if not truncating."""
        encodings = self._full.encode_batch(texts)
        long_indices = [i for i, enc in enumerate(encodings) if len(enc.ids) > self.max_tokens]
        if long_indices and not truncate:
            first = long_indices[0]
            raise InputTooLongError(first, len(encodings[first].ids), self.max_tokens)
        cut: dict[int, Encoding] = {}
        if long_indices:
            again = self._cut[direction].encode_batch([texts[i] for i in long_indices])
            cut = dict(zip(long_indices, again, strict=True))
        return [
            TokenizedText(
                ids=list(cut.get(i, enc).ids),
                type_ids=list(cut.get(i, enc).type_ids),
                original_tokens=len(enc.ids),
            )
            for i, enc in enumerate(encodings)
        ]

    def collate(self, items: list[TokenizedText]) -> ModelInputs:
        """Pad ``items`` to the longest one."""
        longest = max(item.tokens for item in items)
        ids = np.full((len(items), longest), self.pad_id, dtype=np.int64)
        types = np.zeros((len(items), longest), dtype=np.int64)
        mask = np.zeros((len(items), longest), dtype=np.int64)
        for row, item in enumerate(items):
            ids[row, : item.tokens] = item.ids
            types[row, : item.tokens] = item.type_ids
            mask[row, : item.tokens] = 1
        return ModelInputs(input_ids=ids, attention_mask=mask, token_type_ids=types)


def _clone(tokenizer: Tokenizer) -> Tokenizer:
    return Tokenizer.from_str(tokenizer.to_str())


def _load_backend(path: Path) -> Tokenizer:
    file = path / "tokenizer.json"
    try:
        if file.is_file():
            return Tokenizer.from_file(str(file))
        # Older folders ship only vocab.txt: let transformers build the fast tokenizer once.
        try:
            from transformers import AutoTokenizer
        except ImportError:  # a serving install without transformers: BERT's WordPiece from vocab.txt
            return _wordpiece_from_vocab(path)
        return AutoTokenizer.from_pretrained(str(path), use_fast=True).backend_tokenizer
    except Exception as exc:  # tokenizers raises bare Exception for malformed files
        raise ModelLoadError(f"{file}: cannot load tokenizer ({type(exc).__name__})") from exc


def _wordpiece_from_vocab(path: Path) -> Tokenizer:
    """BERT's tokenizer built from ``vocab.txt`` and the casing options of ``tokenizer_config.json``."""
    from tokenizers.implementations import BertWordPieceTokenizer

    config_file = path / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    lowercase = bool(config.get("do_lower_case", True))
    strip_accents = config.get("strip_accents")
    built = BertWordPieceTokenizer(
        str(path / "vocab.txt"),
        lowercase=lowercase,
        strip_accents=lowercase if strip_accents is None else bool(strip_accents),
        handle_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
    )
    tokenizer: Tokenizer = built._tokenizer  # the plain Tokenizer inside the convenience wrapper
    return tokenizer
