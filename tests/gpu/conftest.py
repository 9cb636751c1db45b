"""The CUDA path on a real GPU. Skipped without CUDA; ``GPURUN_DRY=1`` runs the same tests on CPU with
tiny models (the GPU plan's dry run, so that these tests keep working between GPU runs)."""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from fastapi import FastAPI

from models.runtime.builtins import minilm_path
from tests.conftest import build_tiny_classifier, build_tiny_embedder


def dry_run() -> bool:
    """Whether this is the CPU dry run of the GPU plan."""
    return os.environ.get("GPURUN_DRY") == "1"


@pytest.fixture(scope="session")
def device() -> str:
    """Where the tests run: ``cuda`` (skip without it), or ``cpu`` in the dry run."""
    if dry_run():
        return "cpu"
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (GPURUN_DRY=1 runs these on CPU with tiny models)")
    return "cuda"


@pytest.fixture(scope="session")
def embedder(device: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedder under test: the carried float16 all-MiniLM-L6-v2 (``GPURUN_EMBEDDER``) or the
    builtin; a tiny random one in the dry run."""
    if dry_run():
        return build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder"))
    return Path(os.environ.get("GPURUN_EMBEDDER") or minilm_path())


@pytest.fixture(scope="session")
def home() -> Path:
    """The data directory holding the datasets (STS-B, Rotten Tomatoes)."""
    from models.runtime.builtins import default_home

    return default_home()


def float32_copy(folder: Path, target: Path) -> Path:
    """``folder``'s model in float32 (weights and config), with its tokenizer: a base to fine-tune."""
    from models.runtime.folders import describe_model
    from models.runtime.torch_backend import load_module

    load_module(describe_model(folder), "cpu", torch.float32).save_pretrained(target)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (folder / name).is_file():
            shutil.copy(folder / name, target / name)
    return target


@pytest.fixture(scope="session")
def classifier(device: str, embedder: Path, home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sentiment classifier: fine-tuned here from the embedder (a float32 copy of it) on CPU, since
    the carried files hold only one model's weights; a tiny random classifier in the dry run."""
    if dry_run():
        return build_tiny_classifier(tmp_path_factory.mktemp("tiny-classifier"))
    from models.runtime.builtins import classifier_path
    from models.training.finetune import FinetuneConfig, finetune_classifier

    built = classifier_path(home)
    if (built / "config.json").is_file():
        return built
    base = float32_copy(embedder, tmp_path_factory.mktemp("embedder-fp32"))
    out = tmp_path_factory.mktemp("classifier") / "minilm-sentiment"
    finetune_classifier(base, out, home, FinetuneConfig(max_train_examples=4000), progress=False)
    return out


@contextmanager
def limit_memory(app: FastAPI, device: str, rows: int) -> Iterator[None]:
    """Leave the served models little device memory: on CUDA this process may use only 128 MiB more than
    the live models hold (a few small MiniLM batches, far from a 256 x 512 one); on the CPU dry run, where
    torch has no memory cap, the models raise PyTorch's out-of-memory error on batches over ``rows``."""
    if device == "cpu":

        def hook(module: torch.nn.Module, args: tuple[object, ...], kwargs: dict[str, torch.Tensor]) -> None:
            if kwargs["input_ids"].shape[0] > rows:
                raise torch.OutOfMemoryError("CPU dry run: out of memory")

        handles = [
            loaded.engine.backend.model.register_forward_pre_hook(hook, with_kwargs=True)
            for loaded in app.state.registry.models
        ]
        yield
        for handle in handles:
            handle.remove()
        return
    gc.collect()  # earlier tests' models, then their cached blocks: the cap must count live memory only
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_reserved() + 2**27) / total))
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
