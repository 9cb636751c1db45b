"""Text pairs, windows, clipping and token details of the tokenizer; pair and mode cache keys; the
post-processing of rerank scores and chunked inputs; prompts read from a model folder."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from models.runtime.builtins import minilm_path
from models.runtime.errors import InputTooLongError, ModelLoadError
from models.runtime.folders import read_prompts
from models.runtime.postprocess import pool_windows, sigmoid
from models.runtime.tokenization import TextTokenizer
from service.cache.keys import RowScope

pytestmark = pytest.mark.unit

CLS, SEP = 101, 102
SCOPE = RowScope("f" * 16, "onnx", "float32", "classify", "cls", 512)


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    return TextTokenizer.from_folder(minilm_path(), max_tokens=12)


def test_pair_encoding_equals_transformers(tokenizer: TextTokenizer) -> None:
    reference = AutoTokenizer.from_pretrained(str(minilm_path()))
    (item,) = tokenizer.encode([("who is it?", "it is me")], truncate=True)
    expected = reference("who is it?", "it is me")
    assert item.ids == expected["input_ids"]
    assert item.type_ids == expected["token_type_ids"]
    assert item.type_ids[0] == 0
    assert item.type_ids[-1] == 1


def test_long_pair_is_cut_longest_first(tokenizer: TextTokenizer) -> None:
    pair = ("short query", "a much longer document that goes on and on and on")
    (item,) = tokenizer.encode([pair], truncate=True)
    reference = AutoTokenizer.from_pretrained(str(minilm_path()))
    assert item.ids == reference(*pair, truncation="longest_first", max_length=12)["input_ids"]
    assert item.truncated
    assert item.ids[1:3] == reference("short query", add_special_tokens=False)["input_ids"]  # query kept
    with pytest.raises(InputTooLongError) as refused:
        tokenizer.encode(["fits", pair], truncate=False)
    assert (refused.value.index, refused.value.limit) == (1, 12)


def test_windows_cover_the_text_with_overlap(tokenizer: TextTokenizer) -> None:
    text = " ".join(["one", "two", "three", "four", "five"] * 6)  # 30 words, 30 tokens
    items, owners = tokenizer.windows(["short text", text], overlap=3)
    assert owners[0] == 0
    assert set(owners[1:]) == {1}
    bodies = [item.ids[1:-1] for item in items[1:]]
    assert all(item.ids[0] == CLS and item.ids[-1] == SEP and item.tokens <= 12 for item in items)
    # Consecutive windows share 3 tokens; together they hold every token of the text once more per overlap.
    assert all(a[-3:] == b[:3] for a, b in itertools.pairwise(bodies))
    assert sum(len(b) for b in bodies) - 3 * (len(bodies) - 1) == 30


def test_clip_and_token_details(tokenizer: TextTokenizer) -> None:
    assert tokenizer.clip(["hello big world", "hi"], 2) == ["hello big", "hi"]
    (tokens,) = tokenizer.tokens(["Héllo!"], add_special_tokens=True)
    assert [(t.text, t.special, t.start, t.stop) for t in tokens] == [
        ("[CLS]", True, None, None),
        ("Héllo", False, 0, 5),
        ("!", False, 5, 6),
        ("[SEP]", True, None, None),
    ]
    assert tokenizer.decode([[t.id for t in tokens]], skip_special_tokens=True) == ["hello!"]


def test_pair_keys_and_modes_are_distinct() -> None:
    keys = {
        SCOPE.key("a", "right"),
        SCOPE.key(("a", "b"), "right"),
        SCOPE.key(("b", "a"), "right"),
        SCOPE.key(("a b", ""), "right"),
        SCOPE.key("a", "right", "chunk"),
        SCOPE.key("a", "right", "error"),
        SCOPE.key("\0pair", "right"),
    }
    assert len(keys) == 7
    assert SCOPE.key(("a", "b"), "right") == SCOPE.key(("a", "b"), "right")


def test_sigmoid_is_stable_and_windows_pool_by_tokens() -> None:
    np.testing.assert_allclose(sigmoid(np.array([-1000.0, 0.0, 1000.0])), [0.0, 0.5, 1.0])
    rows = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]], dtype=np.float32)
    pooled = pool_windows(rows, [0, 0, 1], [3, 1, 5], 2)
    np.testing.assert_allclose(pooled, [[0.75, 0.25], [2.0, 2.0]])


def test_read_prompts(tmp_path: Path) -> None:
    assert read_prompts(tmp_path) == ({}, None)
    file = tmp_path / "config_sentence_transformers.json"
    file.write_text(json.dumps({"prompts": {"query": "query: "}, "default_prompt_name": "query"}))
    assert read_prompts(tmp_path) == ({"query": "query: "}, "query")
    file.write_text(json.dumps({"prompts": {"query": "query: "}, "default_prompt_name": "other"}))
    with pytest.raises(ModelLoadError, match="default_prompt_name"):
        read_prompts(tmp_path)
    file.write_text(json.dumps({"prompts": {"query": 5}}))
    with pytest.raises(ModelLoadError, match="prompts"):
        read_prompts(tmp_path)
