"""CPU-feature detection, the reasons dtype auto gives for not trying or not serving bfloat16 (both answers,
any CPU), and the start-up timing it decides with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.runtime.autodtype import BF16_MIN_SPEEDUP, bf16_obstacle, speed_obstacle
from models.runtime.cpu import cpu_flags, cpu_model_name, native_bf16_flag
from models.runtime.factory import onnx_model_path
from models.runtime.folders import describe_model
from models.runtime.onnx import OnnxBackend
from models.runtime.sample import SAMPLE_TEXTS
from models.runtime.speed import served_like_batches, speedup
from models.runtime.tokenization import ModelInputs, TextTokenizer

pytestmark = pytest.mark.unit

ZEN5 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9B45
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512_vnni avx512_bf16 avx512vl
bugs\t\t: sysret_ss_attrs
"""
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: avx512f avx512_vnni amx_bf16 amx_tile amx_int8\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse avx avx2 avx512f avx512vl\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sha1 sha2 crc32\n"


def test_flags_of_the_first_processor() -> None:
    flags = cpu_flags(ZEN5)
    assert {"avx512_bf16", "avx512_vnni", "avx2"} <= flags
    assert "sysret_ss_attrs" not in flags  # the bugs line is not a feature
    assert "asimd" in cpu_flags(GRAVITON)
    assert cpu_flags("") == frozenset()


@pytest.mark.parametrize(
    ("cpuinfo", "flag"),
    [(ZEN5, "avx512_bf16"), (SAPPHIRE_RAPIDS, "amx_bf16"), (SKYLAKE, None), (GRAVITON, None), ("", None)],
)
def test_native_bfloat16_on_both_answers(cpuinfo: str, flag: str | None) -> None:
    assert native_bf16_flag(cpu_flags(cpuinfo)) == flag


def test_bfloat16_is_tried_only_when_everything_allows_it() -> None:
    assert bf16_obstacle("auto", "auto", "avx512_bf16", openvino=True) is None
    assert bf16_obstacle("openvino", "auto", "amx_bf16", openvino=True) is None
    reasons = {
        "cpu_bfloat16 setting": bf16_obstacle("auto", "off", "avx512_bf16", openvino=True),
        "no native bfloat16": bf16_obstacle("auto", "auto", None, openvino=True),
        "runtime onnx": bf16_obstacle("onnx", "auto", "avx512_bf16", openvino=True),
        "runtime torch": bf16_obstacle("torch", "auto", "avx512_bf16", openvino=True),
        "not installed": bf16_obstacle("auto", "auto", "avx512_bf16", openvino=False),
    }
    for expected, reason in reasons.items():
        assert expected in (reason or "")


@pytest.mark.parametrize("policy", ["auto", "on"])
def test_both_bfloat16_policies_try_it(policy: str) -> None:
    assert bf16_obstacle("auto", policy, "avx512_bf16", openvino=True) is None  # type: ignore[arg-type]


def test_bfloat16_is_served_only_when_it_is_faster() -> None:
    assert speed_obstacle(1.62, BF16_MIN_SPEEDUP) is None
    assert speed_obstacle(BF16_MIN_SPEEDUP, BF16_MIN_SPEEDUP) is None
    reason = speed_obstacle(0.96, BF16_MIN_SPEEDUP)
    assert reason is not None
    assert "0.96x float32's speed" in reason
    assert f"needs {BF16_MIN_SPEEDUP}x" in reason


def test_served_like_batches_are_ragged_and_cover_the_sample(tiny_embedder: Path) -> None:
    tokenizer = TextTokenizer.from_folder(tiny_embedder, 64)
    batches = served_like_batches(tokenizer)
    sizes = [batch.input_ids.shape[0] for batch in batches]
    assert sum(sizes) == len(SAMPLE_TEXTS)
    assert sizes[:4] == [1, 6, 3, 12]
    assert len({batch.input_ids.shape for batch in batches}) >= len(batches) - 1  # nearly all new shapes


class _Repeated:
    """A real backend that runs every batch ``times`` times: ``times`` as costly, same rows."""

    def __init__(self, backend: OnnxBackend, times: int) -> None:
        self.backend, self.times = backend, times
        self.token_multiple = backend.token_multiple

    def forward(self, batch: ModelInputs, alone: bool = False) -> np.ndarray:
        for _ in range(self.times - 1):
            self.backend.forward(batch, alone)
        return self.backend.forward(batch, alone)


def test_speedup_measures_cpu_cost_of_the_same_batches(tiny_embedder: Path, tmp_path: Path) -> None:
    description = describe_model(tiny_embedder)
    backend = OnnxBackend(onnx_model_path(description, tmp_path), 1)
    tokenizer = TextTokenizer.from_folder(tiny_embedder, 64)
    measured = speedup(backend, _Repeated(backend, 4), tokenizer)  # type: ignore[arg-type]
    assert 2.5 < measured < 6


def test_the_cpu_model_name_keys_the_kept_timings() -> None:
    assert cpu_model_name(ZEN5) == "AMD EPYC 9B45"
    assert cpu_model_name(GRAVITON) == ""
