"""Tokenization: exact counts, truncation on both sides, padding."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from models.runtime.builtins import minilm_path
from models.runtime.errors import InputTooLongError
from models.runtime.tokenization import TextTokenizer

pytestmark = pytest.mark.unit

CLS, SEP = 101, 102


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    return TextTokenizer.from_folder(minilm_path(), max_tokens=8)


def test_short_text_is_untouched(tokenizer: TextTokenizer) -> None:
    (item,) = tokenizer.encode(["hello world"], truncate=False)
    assert item.ids[0] == CLS
    assert item.ids[-1] == SEP
    assert item.tokens == item.original_tokens == 4
    assert not item.truncated


def test_truncation_keeps_special_tokens_on_both_sides(tokenizer: TextTokenizer) -> None:
    text = "one two three four five six seven eight nine ten"
    (right,) = tokenizer.encode([text], truncate=True, direction="right")
    (left,) = tokenizer.encode([text], truncate=True, direction="left")
    full = tokenizer.encode([text], truncate=True, direction="right")[0].original_tokens
    assert full == 12
    assert right.tokens == left.tokens == 8
    assert right.ids[0] == left.ids[0] == CLS
    assert right.ids[-1] == left.ids[-1] == SEP
    words = TextTokenizer.from_folder(minilm_path(), 64).encode([text], truncate=False)[0].ids[1:-1]
    assert right.ids[1:-1] == words[:6]
    assert left.ids[1:-1] == words[-6:]


def test_too_long_without_truncation_raises_with_counts(tokenizer: TextTokenizer) -> None:
    with pytest.raises(InputTooLongError) as caught:
        tokenizer.encode(["ok", "one two three four five six seven eight"], truncate=False)
    assert (caught.value.index, caught.value.tokens, caught.value.limit) == (1, 10, 8)


def test_collate_pads_to_longest(tokenizer: TextTokenizer) -> None:
    items = tokenizer.encode(["a", "a b c"], truncate=True)
    batch = tokenizer.collate(items)
    assert batch.input_ids.shape == (2, 5)
    np.testing.assert_array_equal(batch.attention_mask.sum(axis=1), [3, 5])
    assert batch.input_ids[0, 3:].tolist() == [tokenizer.pad_id] * 2


def test_collate_rounds_up_to_a_multiple_of_tokens_within_the_limit(tokenizer: TextTokenizer) -> None:
    items = tokenizer.encode(["a", "a b c"], truncate=True)
    batch = tokenizer.collate(items, 8)
    assert batch.input_ids.shape == (2, 8)
    np.testing.assert_array_equal(batch.attention_mask.sum(axis=1), [3, 5])  # padding is masked
    assert batch.input_ids[1, 5:].tolist() == [tokenizer.pad_id] * 3
    assert tokenizer.collate(tokenizer.encode(["a b c d e f"], truncate=True), 8).input_ids.shape == (1, 8)
    # Never past the model's limit (8 here): 8 tokens with a multiple of 7 stay 8, not 14.
    long_item = tokenizer.encode(["word " * 300], truncate=True)
    assert long_item[0].tokens == tokenizer.max_tokens
    assert tokenizer.collate(long_item, 7).input_ids.shape == (1, tokenizer.max_tokens)


def test_tokenizer_from_vocab_only(tmp_path: Path) -> None:
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (tmp_path / name).write_bytes((minilm_path() / name).read_bytes())
    legacy = TextTokenizer.from_folder(tmp_path, max_tokens=16)
    modern = TextTokenizer.from_folder(minilm_path(), max_tokens=16)
    text = ["Mixed CASE text, with punctuation!"]
    assert legacy.encode(text, True)[0].ids == modern.encode(text, True)[0].ids


def test_vocab_only_folder_tokenizes_the_same_without_transformers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = minilm_path()
    for name in ("vocab.txt", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((source / name).read_bytes())
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` raises ImportError
    texts = ["Héllo, WORLD!  Tokenizers split wordpieces", "naïve café 東京 — unbelievable", "x" * 300]
    built = TextTokenizer.from_folder(tmp_path, 128).encode(texts, truncate=True)
    shipped = TextTokenizer.from_folder(source, 128).encode(texts, truncate=True)
    assert [item.ids for item in built] == [item.ids for item in shipped]
    assert [item.original_tokens for item in built] == [item.original_tokens for item in shipped]
