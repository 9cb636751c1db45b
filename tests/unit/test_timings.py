"""Start-up timings kept in the home: timed once per key, concurrent starts wait for the first, and a home
that cannot be written times afresh."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from models.runtime.timings import kept_ratio

pytestmark = pytest.mark.unit

KEY = {"model": "abc", "cpu": "AMD EPYC 9B45", "threads": 2}


class _Timer:
    """A measurement that counts its calls and returns the next ratio."""

    def __init__(self, *ratios: float, seconds: float = 0.0) -> None:
        self.ratios = list(ratios)
        self.calls = 0
        self.seconds = seconds

    def __call__(self) -> float:
        self.calls += 1
        time.sleep(self.seconds)
        return self.ratios.pop(0)


def test_a_ratio_is_timed_once_and_then_kept(tmp_path: Path) -> None:
    timer = _Timer(1.61, 1.17)
    assert kept_ratio(tmp_path, KEY, timer) == (1.61, False)
    assert kept_ratio(tmp_path, KEY, timer) == (1.61, True)  # the second start does not time
    assert timer.calls == 1


def test_another_key_is_timed_afresh(tmp_path: Path) -> None:
    timer = _Timer(1.61, 1.17)
    kept_ratio(tmp_path, KEY, timer)
    assert kept_ratio(tmp_path, {**KEY, "threads": 4}, timer) == (1.17, False)
    assert timer.calls == 2


def test_starts_at_once_wait_for_one_timing(tmp_path: Path) -> None:
    timer = _Timer(1.61, 1.17, seconds=0.3)
    results: list[tuple[float, bool]] = []
    starts = [
        threading.Thread(target=lambda: results.append(kept_ratio(tmp_path, KEY, timer))) for _ in range(3)
    ]
    for thread in starts:
        thread.start()
    for thread in starts:
        thread.join()
    assert timer.calls == 1
    assert sorted(results) == [(1.61, False), (1.61, True), (1.61, True)]


def test_a_torn_file_is_timed_again(tmp_path: Path) -> None:
    timer = _Timer(1.61, 1.3)
    kept_ratio(tmp_path, KEY, timer)
    (kept,) = tmp_path.glob("*.json")
    kept.write_text('{"ratio": 1.6', encoding="utf-8")
    assert kept_ratio(tmp_path, KEY, timer) == (1.3, False)


def test_a_home_that_cannot_be_written_times_every_start(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("", encoding="utf-8")
    timer = _Timer(1.61, 1.17)
    assert kept_ratio(blocked / "timings", KEY, timer) == (1.61, False)
    assert kept_ratio(blocked / "timings", KEY, timer) == (1.17, False)
