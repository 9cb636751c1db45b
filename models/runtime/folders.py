"""Locate, validate and describe BERT-family encoders.

Only safetensors weights are accepted and ``trust_remote_code`` is never set: a model folder is data,
not code. Everything a server needs to know about a model before loading its weights is read here into
a :class:`ModelDescription`, so that a bad folder fails at start-up with one clear message.
"""

from __future__ import annotations

import functools
import hashlib
import json
import mmap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.runtime.errors import ModelLoadError
from models.runtime.types import Pooling, Task

#: Model types of the BERT family that bertserve serves (config.json ``model_type``).
SUPPORTED_MODEL_TYPES = frozenset({"bert", "distilbert", "roberta", "xlm-roberta", "electra", "camembert"})
#: RoBERTa-style position ids start after the padding index, which costs two positions.
_POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2}
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
#: An ONNX-only folder (an int8 variant, or a float32 copy for serving without PyTorch) has no
#: safetensors: its graph is its weights.
ONNX_FILE = "model.onnx"
#: An OpenVINO int8 variant: its graph as OpenVINO IR (``.xml``, weights in the ``.bin`` next to it).
OPENVINO_FILE = "openvino_model.xml"
_PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5")
#: A safetensors header larger than this is not a real one (a header is a few kB per hundred tensors).
_MAX_HEADER_BYTES = 100 * 1024 * 1024
#: Hard cap on tokens per input: past this, attention cost makes one input a denial of service.
_MAX_TOKENS_CAP = 8192


@dataclass(frozen=True)
class ModelDescription:
    """What a model folder holds, read from its configuration files (no weights loaded)."""

    path: Path
    model_type: str
    task: Task
    pooling: Pooling
    max_input_tokens: int
    hidden_size: int
    labels: tuple[str, ...]
    fingerprint: str
    variant: dict[str, Any] | None
    weights: Path
    #: Named prompts put before inputs (sentence-transformers' ``config_sentence_transformers.json``).
    prompts: dict[str, str] = field(default_factory=dict)
    #: The prompt used when a request names none (None: no prompt).
    default_prompt_name: str | None = None

    @property
    def onnx_only(self) -> bool:
        """Whether the folder holds an ONNX graph and no PyTorch weights (only ONNX Runtime can run it)."""
        return self.weights.name == ONNX_FILE

    @property
    def int8_onnx(self) -> bool:
        """Whether the folder is an int8 ONNX variant: ONNX-only, and its graph quantized. An ONNX-only
        copy of a float32 model (the serving image's built-ins) is not: OpenVINO may run it in bfloat16."""
        return self.onnx_only and _has_int8_ops(self.weights, self.weights.stat().st_mtime_ns)

    @property
    def openvino_only(self) -> bool:
        """Whether the folder holds an OpenVINO IR graph and no other weights (only OpenVINO runs it)."""
        return self.weights.name == OPENVINO_FILE


#: Operators only a quantized ONNX graph has (ONNX Runtime's dynamic and static int8 forms).
_INT8_OPERATORS = (b"MatMulInteger", b"DynamicQuantizeLinear", b"QuantizeLinear", b"QLinearMatMul")


@functools.lru_cache(maxsize=64)
def _has_int8_ops(graph: Path, mtime_ns: int) -> bool:
    """Whether the ONNX file holds a quantized operator (their names are plain strings in the protobuf,
    so a scan answers without the onnx package; ``mtime_ns`` keys the cache to the file's version)."""
    with graph.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return any(data.find(name) != -1 for name in _INT8_OPERATORS)


def resolve_source(source: str, revision: str | None = None) -> Path:
    """Turn a model source (local folder or hub id) into a local folder.

    A hub id is fetched through the Hugging Face cache; offline (or without network) that fails with
    a :class:`ModelLoadError` that says so, rather than a stack trace.
    """
    local = Path(source).expanduser()
    if local.is_dir():
        return local.resolve()
    if local.is_absolute() or source.startswith((".", "~")) or source.count("/") > 1:
        raise ModelLoadError(f"model folder {source!r} does not exist")
    return _fetch_from_hub(source, revision)


def _fetch_from_hub(repo_id: str, revision: str | None) -> Path:
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "1_Pooling/*"],
        )
    except Exception as exc:  # the hub client raises many unrelated types for the same failure
        raise ModelLoadError(
            f"hub model {repo_id!r} is not in the local cache and could not be downloaded "
            f"(offline or no network?): {type(exc).__name__}"
        ) from exc
    return Path(folder)


def check_weights(path: Path) -> Path:
    """Return the weight file of ``path`` (safetensors, else ``model.onnx``); refuse pickle or none.

    Safetensors files are checked here (header and sizes), so a truncated or corrupt download stops
    start-up with the file's name instead of failing later inside the runtime.
    """
    for name in (*_WEIGHT_FILES, ONNX_FILE, OPENVINO_FILE):
        if (path / name).is_file():
            if name == "model.safetensors":
                check_safetensors(path / name)
            elif name.endswith(".index.json"):
                for shard in sorted(set(read_json(path / name).get("weight_map", {}).values())):
                    check_safetensors(path / shard)
            return path / name
    pickled = [name for name in _PICKLE_FILES if (path / name).exists()]
    if pickled:
        raise ModelLoadError(
            f"{path}: only pickle weights ({pickled[0]}) found; bertserve loads safetensors only "
            "(convert with transformers' save_pretrained(safe_serialization=True))"
        )
    raise ModelLoadError(f"{path}: no model.safetensors (or model.onnx, {OPENVINO_FILE}) found")


def check_safetensors(file: Path) -> None:
    """Refuse a safetensors file whose header is missing, unreadable or points past the file's end."""
    if not file.is_file():
        raise ModelLoadError(f"{file}: missing")
    size = file.stat().st_size
    with file.open("rb") as handle:
        prefix = handle.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if length <= 0 or 8 + length > size or length > _MAX_HEADER_BYTES:
            raise ModelLoadError(f"{file}: not a safetensors file (truncated or corrupt header)")
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            raise ModelLoadError(f"{file}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"{file}: not a safetensors file (header is not a JSON object)")
    data_bytes = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1]):
            raise ModelLoadError(f"{file}: corrupt safetensors header (tensor {name!r})")
        if offsets[1] > data_bytes:
            raise ModelLoadError(
                f"{file}: truncated: tensor {name!r} ends at byte {offsets[1]} of {data_bytes} data bytes"
            )


def check_no_remote_code(path: Path, config: dict[str, Any]) -> None:
    """Refuse folders that need custom code: ``auto_map`` or ``trust_remote_code`` in their configs."""
    for name in ("config.json", "tokenizer_config.json"):
        file = path / name
        data = config if name == "config.json" else read_json(file) if file.is_file() else {}
        for key in ("auto_map", "trust_remote_code"):
            if data.get(key):
                raise ModelLoadError(
                    f"{file}: declares {key} (custom model code); bertserve never runs remote code, "
                    "serve a model that the built-in BERT-family classes load"
                )


def read_json(file: Path) -> dict[str, Any]:
    """Read a JSON object, turning every failure into a :class:`ModelLoadError` naming the file."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{file}: missing") from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{file}: expected a JSON object")
    return data


def infer_task(config: dict[str, Any]) -> Task:
    """Embed or classify, from config.json's ``architectures``."""
    architectures = config.get("architectures") or []
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return "classify"
    return "embed"


def read_pooling(path: Path) -> Pooling | None:
    """Pooling from a sentence-transformers ``1_Pooling/config.json``, if the folder has one."""
    file = path / "1_Pooling" / "config.json"
    if not file.is_file():
        return None
    config = read_json(file)
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    modes = [k for k, v in config.items() if k.startswith("pooling_mode") and v]
    raise ModelLoadError(f"{file}: unsupported pooling mode {modes}; bertserve supports mean, cls")


def max_input_tokens(path: Path, config: dict[str, Any], override: int | None) -> int:
    """The longest input (in tokens, special tokens included) the model accepts."""
    positions = int(config.get("max_position_embeddings", 512))
    limit = positions - _POSITION_OFFSET.get(str(config.get("model_type")), 0)
    st_config = path / "sentence_bert_config.json"
    if st_config.is_file():
        limit = min(limit, int(read_json(st_config).get("max_seq_length", limit)))
    if override is not None:
        if override > limit:
            raise ModelLoadError(f"{path}: max_input_tokens {override} exceeds the model's {limit}")
        limit = override
    return min(limit, _MAX_TOKENS_CAP)


def fingerprint(weights: Path, variant: dict[str, Any] | None) -> str:
    """A short content hash of the weights (and variant recipe) that names this exact model."""
    files = [weights]
    if weights.name.endswith(".index.json"):
        shards = sorted(set(read_json(weights).get("weight_map", {}).values()))
        files = [weights.parent / shard for shard in shards]
    elif weights.name == OPENVINO_FILE:
        files = [weights, weights.with_suffix(".bin")]  # the IR's weights live in the .bin
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(_file_digest(file, stat.st_size, stat.st_mtime_ns).encode())
    if variant:
        # Eval figures are notes about the variant, not part of what it computes.
        recipe = {key: value for key, value in variant.items() if key != "eval"}
        digest.update(json.dumps(recipe, sort_keys=True).encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _file_digest(file: Path, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the cache key: a rewritten file is hashed again.
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_prompts(path: Path) -> tuple[dict[str, str], str | None]:
    """The named prompts and default prompt name of a sentence-transformers folder (none when absent)."""
    file = path / "config_sentence_transformers.json"
    if not file.is_file():
        return {}, None
    config = read_json(file)
    prompts = config.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise ModelLoadError(f"{file}: prompts must map names to strings")
    default = config.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise ModelLoadError(f"{file}: default_prompt_name {default!r} is not one of its prompts")
    return {str(k): v for k, v in prompts.items()}, default


def describe_model(
    path: Path,
    task: Task | None = None,
    pooling: Pooling | None = None,
    max_tokens: int | None = None,
) -> ModelDescription:
    """Validate a model folder and read everything needed to serve it."""
    config = read_json(path / "config.json")
    model_type = str(config.get("model_type", ""))
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(
            f"{path / 'config.json'}: model_type {model_type!r} is not a supported BERT-family "
            f"encoder ({', '.join(sorted(SUPPORTED_MODEL_TYPES))})"
        )
    check_no_remote_code(path, config)
    if not (path / "tokenizer.json").is_file() and not (path / "vocab.txt").is_file():
        raise ModelLoadError(f"{path}: no tokenizer (tokenizer.json or vocab.txt) found")
    weights = check_weights(path)
    variant_file = path / "variant.json"
    variant = read_json(variant_file) if variant_file.is_file() else None
    resolved_task = task or infer_task(config)
    labels: tuple[str, ...] = ()
    if resolved_task == "classify":
        id2label = config.get("id2label") or {}
        count = int(config.get("num_labels", len(id2label) or 2))
        labels = tuple(str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(count))
    prompts, default_prompt = read_prompts(path)
    return ModelDescription(
        path=path,
        model_type=model_type,
        task=resolved_task,
        pooling=pooling or read_pooling(path) or "cls",
        max_input_tokens=max_input_tokens(path, config, max_tokens),
        hidden_size=int(config.get("hidden_size", config.get("dim", 0))),
        labels=labels,
        fingerprint=fingerprint(weights, variant),
        variant=variant,
        weights=weights,
        prompts=prompts,
        default_prompt_name=default_prompt,
    )
