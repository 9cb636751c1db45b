"""CPU-feature detection and the reasons dtype auto gives for not trying bfloat16 (both answers, any CPU)."""

from __future__ import annotations

import pytest

from models.runtime.autodtype import bf16_obstacle
from models.runtime.cpu import cpu_flags, native_bf16_flag

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
