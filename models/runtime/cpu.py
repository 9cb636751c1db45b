"""What this CPU can do natively: bfloat16 matrix instructions (read once from ``/proc/cpuinfo``).

``dtype: auto`` serves bfloat16 only where the CPU multiplies bfloat16 matrices in hardware
(``avx512_bf16``, or AMX's ``amx_bf16``): elsewhere bfloat16 is emulated and slower than float32. The
decision is a pure function of the flags so that both answers are tested on any machine.
"""

from __future__ import annotations

import functools
from pathlib import Path

#: Flags that mean native bfloat16 dot products (AVX-512 BF16, or Intel AMX tiles).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first processor listed in ``/proc/cpuinfo`` text (``flags`` on x86,
    ``Features`` on Arm)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native_bf16_flag(flags: frozenset[str]) -> str | None:
    """The flag that gives native bfloat16 matrix products, or None when the CPU has none."""
    return next((flag for flag in BF16_FLAGS if flag in flags), None)


def cpu_model_name(cpuinfo: str) -> str:
    """The model name of the first processor listed in ``/proc/cpuinfo`` text (empty when absent)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return ""


@functools.cache
def _host_cpuinfo() -> str | None:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def host_cpu_name() -> str:
    """:func:`cpu_model_name` for this machine."""
    return cpu_model_name(_host_cpuinfo() or "")


def host_bf16_flag() -> str | None:
    """:func:`native_bf16_flag` for this machine (None where ``/proc/cpuinfo`` cannot be read)."""
    text = _host_cpuinfo()
    return None if text is None else native_bf16_flag(cpu_flags(text))
