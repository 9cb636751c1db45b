"""Fast tokenization with exact token counts and per-request truncation direction.

Inputs are first encoded without truncation, so that the true token count is known (an over-long input
with ``truncate: false`` is refused with its count and the limit); only inputs over the limit are encoded
again by a truncating copy of the tokenizer, which keeps the special tokens in place.

An input is a text or a text pair (``[CLS] a [SEP] b [SEP]``, token types 0 then 1, as cross-encoders
and NLI classifiers read them); an over-long pair is cut longest-first (tokens come off the longer text).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from models.runtime.errors import InputTooLongError, ModelLoadError
from models.runtime.types import Direction, ModelInput


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
class Token:
    """One token of a text (``start``/``stop``: its characters; None for special tokens)."""

    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


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
            cut.enable_truncation(max_length=max_tokens, strategy="longest_first", direction=side)

    @classmethod
    def from_folder(cls, path: Path, max_tokens: int) -> TextTokenizer:
        """Load the fast tokenizer of a model folder (tokenizer.json, or built from vocab.txt)."""
        tokenizer = _load_backend(path)
        pad = tokenizer.token_to_id("[PAD]")
        if pad is None:
            pad = tokenizer.token_to_id("<pad>")
        return cls(tokenizer, max_tokens, pad if pad is not None else 0)

    def encode(
        self, texts: Sequence[ModelInput], truncate: bool, direction: Direction = "right"
    ) -> list[TokenizedText]:
        """Encode ``texts`` (texts or pairs); raise :class:`InputTooLongError` for an over-long input if
        not truncating."""
        encodings = self._full.encode_batch(list(texts))
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

    def windows(self, texts: list[str], overlap: int) -> tuple[list[TokenizedText], list[int]]:
        """Each text as it is if it fits, else as overlapping windows of the model's limit (each with the
        text's special tokens around it); returns the items and, per item, the index of its text."""
        items: list[TokenizedText] = []
        owners: list[int] = []
        for index, enc in enumerate(self._full.encode_batch(texts)):
            ids, special = list(enc.ids), enc.special_tokens_mask
            if len(ids) <= self.max_tokens:
                items.append(TokenizedText(ids, list(enc.type_ids), len(ids)))
                owners.append(index)
                continue
            lead = next(i for i, flag in enumerate(special) if not flag)
            trail = next(i for i, flag in enumerate(reversed(special)) if not flag)
            head, body, tail = ids[:lead], ids[lead : len(ids) - trail], ids[len(ids) - trail :]
            width = self.max_tokens - lead - trail
            step = max(width - overlap, 1)
            start = 0
            while True:
                part = head + body[start : start + width] + tail
                items.append(TokenizedText(part, [0] * len(part), len(part)))
                owners.append(index)
                if start + width >= len(body):
                    break
                start += step
        return items, owners

    def clip(self, texts: list[str], max_tokens: int) -> list[str]:
        """Each text cut to its first ``max_tokens`` tokens (special tokens not counted), at the end of
        the last kept token's characters (Cohere's max_tokens_per_doc)."""
        encodings = self._full.encode_batch(texts, add_special_tokens=False)
        return [
            text[: enc.offsets[max_tokens - 1][1]] if len(enc.ids) > max_tokens else text
            for text, enc in zip(texts, encodings, strict=True)
        ]

    def tokens(self, texts: list[str], add_special_tokens: bool) -> list[list[Token]]:
        """Per text, its tokens as the model sees them (before any truncation): id, the characters they
        cover (a special token: its own name), whether special, and the character span."""
        out = []
        for text, enc in zip(
            texts, self._full.encode_batch(texts, add_special_tokens=add_special_tokens), strict=True
        ):
            row = []
            for token_id, name, special, (start, stop) in zip(
                enc.ids, enc.tokens, enc.special_tokens_mask, enc.offsets, strict=True
            ):
                if special:
                    row.append(Token(token_id, name, True, None, None))
                else:
                    row.append(Token(token_id, text[start:stop], False, start, stop))
            out.append(row)
        return out

    def decode(self, ids: list[list[int]], skip_special_tokens: bool) -> list[str]:
        """Texts of token id lists (ids outside the vocabulary are skipped)."""
        return list(self._full.decode_batch(ids, skip_special_tokens=skip_special_tokens))

    def collate(self, items: list[TokenizedText], multiple: int = 1) -> ModelInputs:
        """Pad ``items`` to the longest one, rounded up to a ``multiple`` of tokens (never past the
        model's limit). Padded positions are masked: the rows do not depend on the padding."""
        longest = max(item.tokens for item in items)
        longest = max(longest, min(-(-longest // multiple) * multiple, self.max_tokens))
        ids = np.full((len(items), longest), self.pad_id, dtype=np.int64)
        types = np.zeros((len(items), longest), dtype=np.int64)
        mask = np.zeros((len(items), longest), dtype=np.int64)
        for row, item in enumerate(items):
            ids[row, : item.tokens] = item.ids
            types[row, : item.tokens] = item.type_ids
            mask[row, : item.tokens] = 1
        return ModelInputs(input_ids=ids, attention_mask=mask, token_type_ids=types)


def input_chars(inputs: Sequence[ModelInput]) -> int:
    """Characters in ``inputs`` (both texts of a pair)."""
    return sum(len(item) if isinstance(item, str) else len(item[0]) + len(item[1]) for item in inputs)


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
