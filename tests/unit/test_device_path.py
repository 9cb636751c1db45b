"""The device path of the PyTorch runtime on CPU: batch limits per device, one packed copy per batch,
and out-of-memory on a batch as a retryable error that leaves the model working."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from models.runtime.devices import (
    CPU_BATCH_ITEMS,
    CPU_BATCH_TOKENS,
    CUDA_BATCH_TOKENS,
    activation_bytes_per_token,
    cuda_batch_tokens,
    default_batch_limits,
)
from models.runtime.errors import DeviceOutOfMemoryError
from models.runtime.folders import describe_model
from models.runtime.tokenization import TextTokenizer
from models.runtime.torch_backend import TorchBackend, out_of_memory, rows_to_host, stage_inputs
from service.settings import Settings

pytestmark = pytest.mark.unit

MINILM = {"hidden_size": 384, "intermediate_size": 1536, "num_attention_heads": 12}
GIB = 1 << 30


def test_cpu_batches_keep_the_measured_defaults(tiny_embedder: Path) -> None:
    assert default_batch_limits("cpu", tiny_embedder, "float32") == (CPU_BATCH_TOKENS, CPU_BATCH_ITEMS)
    assert Settings(models=[{"name": "m", "source": "x"}]).max_batch_tokens is None


def test_cuda_budget_grows_with_free_memory_as_a_bounded_power_of_two() -> None:
    per_token = activation_bytes_per_token({**MINILM, "max_position_embeddings": 512}, "bfloat16")
    # 2 bytes x (8 x 384 + 2 x 1536 + 2 x 12 x 512): about 37 KB per padded token.
    assert per_token == 2 * (8 * 384 + 2 * 1536 + 2 * 12 * 512)
    budgets = [cuda_batch_tokens(free * GIB, per_token) for free in (0, 1, 4, 16, 64, 140)]
    assert budgets == sorted(budgets)
    assert budgets[0] == CUDA_BATCH_TOKENS[0]
    assert budgets[-1] == CUDA_BATCH_TOKENS[1]
    assert all(b & (b - 1) == 0 for b in budgets)
    middle = cuda_batch_tokens(4 * GIB, per_token)  # a quarter of 4 GiB / 37 KB: 28 k tokens -> 16384
    assert middle == 16384
    assert middle * per_token <= GIB


def test_float32_tokens_cost_twice_the_half_precision_ones() -> None:
    assert activation_bytes_per_token(MINILM, "float32") == 2 * activation_bytes_per_token(MINILM, "float16")


def test_inputs_are_packed_into_one_tensor_and_rows_come_back_as_float32() -> None:
    arrays = [np.arange(6, dtype=np.int64).reshape(2, 3) * k for k in (1, 2, 3)]
    packed = stage_inputs(arrays, pinned=False)
    assert packed.shape == (3, 2, 3)
    assert packed.dtype == torch.int64
    for slot, array in zip(packed, arrays, strict=True):
        np.testing.assert_array_equal(slot.numpy(), array)
    rows = torch.randn(2, 4, dtype=torch.bfloat16).float()
    np.testing.assert_array_equal(rows_to_host(rows, pinned=False), rows.numpy())


@pytest.fixture
def backend(tiny_embedder: Path) -> TorchBackend:
    return TorchBackend(describe_model(tiny_embedder), "cpu", "float32")


@pytest.fixture
def tokenizer(tiny_embedder: Path) -> TextTokenizer:
    return TextTokenizer.from_folder(tiny_embedder, 64)


TEXTS = ["a short one", "a somewhat longer sentence than the first", "third"]


def test_the_staged_copy_path_gives_the_same_rows(backend: TorchBackend, tokenizer: TextTokenizer) -> None:
    batch = tokenizer.collate(tokenizer.encode(TEXTS, truncate=True))
    direct = backend.forward(batch)
    backend.staged = True  # the CUDA path's packing and copies, minus pinning (CPU torch has none)
    np.testing.assert_array_equal(backend.forward(batch), direct)


@pytest.fixture
def memory_bound(backend: TorchBackend) -> Iterator[None]:
    """The model raises PyTorch's out-of-memory error on batches of more than two inputs, as a device
    with little memory left does."""

    def hook(module: torch.nn.Module, args: tuple[object, ...], kwargs: dict[str, torch.Tensor]) -> None:
        if kwargs["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    handle = backend.model.register_forward_pre_hook(hook, with_kwargs=True)
    yield
    handle.remove()


@pytest.mark.usefixtures("memory_bound")
def test_out_of_memory_on_a_batch_is_retryable_and_the_next_batch_runs(
    backend: TorchBackend, tokenizer: TextTokenizer
) -> None:
    big = tokenizer.collate(tokenizer.encode(TEXTS, truncate=True))
    with pytest.raises(DeviceOutOfMemoryError, match=r"out of cpu memory on a batch of 3 inputs x \d+"):
        backend.forward(big)
    small = tokenizer.collate(tokenizer.encode(TEXTS[:2], truncate=True))
    assert backend.forward(small).shape == (2, 32)


def test_only_allocation_failures_count_as_out_of_memory() -> None:
    with pytest.raises(RuntimeError) as real:  # the CPU allocator's own failure, not a stand-in
        torch.empty(1 << 62, dtype=torch.uint8)
    assert out_of_memory(real.value)
    assert out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))
    assert not out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x32 and 64x8)"))
    assert not out_of_memory(ValueError("out of memory"))
