"""Model folder validation: tasks, pooling, limits, refusals with clear messages."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from models.runtime.errors import ModelLoadError
from models.runtime.folders import describe_model, resolve_source

pytestmark = pytest.mark.unit


def test_embedder_description(tiny_embedder: Path) -> None:
    description = describe_model(tiny_embedder)
    assert (description.task, description.pooling, description.model_type) == ("embed", "mean", "bert")
    assert description.max_input_tokens == 64
    assert description.hidden_size == 32
    assert len(description.fingerprint) == 16


def test_classifier_description(tiny_classifier: Path) -> None:
    description = describe_model(tiny_classifier)
    assert description.task == "classify"
    assert description.labels == ("negative", "neutral", "positive")


def test_overrides(tiny_embedder: Path) -> None:
    description = describe_model(tiny_embedder, task="classify", pooling="cls", max_tokens=16)
    assert (description.task, description.pooling, description.max_input_tokens) == ("classify", "cls", 16)
    with pytest.raises(ModelLoadError, match="exceeds"):
        describe_model(tiny_embedder, max_tokens=65)


def test_fingerprint_follows_weights(tiny_embedder: Path, tiny_classifier: Path) -> None:
    assert describe_model(tiny_embedder).fingerprint == describe_model(tiny_embedder).fingerprint
    assert describe_model(tiny_embedder).fingerprint != describe_model(tiny_classifier).fingerprint


def _copy(folder: Path, target: Path) -> Path:
    return Path(shutil.copytree(folder, target))


def test_pickle_only_weights_are_refused(tiny_embedder: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_embedder, tmp_path / "m")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"pytorch_model\.bin.*safetensors only"):
        describe_model(folder)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2], r"truncated: tensor '.*' ends at byte"),
        (lambda b: b[:4], r"not a safetensors file \(truncated or corrupt header\)"),
        (lambda b: b"", r"not a safetensors file \(truncated or corrupt header\)"),
        (lambda b: b[:8] + b"\xff" * (len(b) - 8), r"not a safetensors file \(header is not JSON\)"),
        (lambda b: (2**40).to_bytes(8, "little") + b[8:], r"not a safetensors file \(truncated"),
    ],
)
def test_corrupt_safetensors_are_refused(
    tiny_embedder: Path, tmp_path: Path, damage: Callable[[bytes], bytes], message: str
) -> None:
    folder = _copy(tiny_embedder, tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(ModelLoadError, match=r"model\.safetensors: " + message):
        describe_model(folder)


@pytest.mark.parametrize(
    ("file", "fields"),
    [
        ("config.json", {"auto_map": {"AutoModel": "modeling_custom.CustomBert"}}),
        ("config.json", {"trust_remote_code": True}),
        ("tokenizer_config.json", {"auto_map": {"AutoTokenizer": ["tok.CustomTokenizer", None]}}),
    ],
)
def test_remote_code_is_refused(
    tiny_embedder: Path, tmp_path: Path, file: str, fields: dict[str, object]
) -> None:
    folder = _copy(tiny_embedder, tmp_path / "m")
    config = json.loads((folder / file).read_text())
    (folder / file).write_text(json.dumps({**config, **fields}))
    key = next(iter(fields))
    with pytest.raises(ModelLoadError, match=rf"{file}: declares {key} \(custom model code\)"):
        describe_model(folder)


def test_missing_and_corrupt_config(tiny_embedder: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_embedder, tmp_path / "m")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"config\.json: not valid JSON"):
        describe_model(folder)
    (folder / "config.json").unlink()
    with pytest.raises(ModelLoadError, match=r"config\.json: missing"):
        describe_model(folder)


def test_unsupported_model_type(tiny_embedder: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_embedder, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(ModelLoadError, match="'gpt2' is not a supported BERT-family"):
        describe_model(folder)


def test_missing_local_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_source(str(tmp_path / "absent"))


def test_hub_id_offline_fails_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError, match=r"not in the local cache.*offline"):
        resolve_source("some-org/some-model")
