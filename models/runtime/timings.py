"""Start-up timings kept in the bertserve home, so that every start of a model on one machine chooses alike.

``dtype: auto`` times bfloat16 against float32 before it chooses (:mod:`models.runtime.speed`). Two
replicas that start together share the cores while they time, and can disagree: seen in CI, two servers
of the same model started at once timed 1.17x and 1.61x, so one served float32 and the other bfloat16.
Their rows then differ in the fourth decimal, and they cannot share a Redis cache, whose keys name the
dtype. So the first timing of a model on a machine is kept, per model fingerprint, CPU, thread layout
and runtime versions; a file lock makes a start that comes meanwhile wait for it and read it. Another
machine, CPU or release times afresh (a new key); deleting the folder times everything again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

logger = logging.getLogger(__name__)


def _key_name(key: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def _read_ratio(path: Path) -> float | None:
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["ratio"])
    except (OSError, ValueError, KeyError, TypeError):  # absent, or a torn or foreign file: time again
        return None


def kept_ratio(
    directory: Path, key: Mapping[str, object], measure: Callable[[], float]
) -> tuple[float, bool]:
    """``measure()`` for ``key``, timed once per ``directory``: (ratio, True) when an earlier start timed
    it. Starts that come while it is being timed wait for it. Where ``directory`` cannot be written (a
    read-only home), every start times for itself."""
    name = _key_name(key)
    path = directory / f"{name}.json"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = (directory / f"{name}.lock").open("w")
    except OSError as exc:
        logger.warning("start-up timings cannot be kept in %s (%s): timing afresh", directory, exc)
        return measure(), False
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        kept = _read_ratio(path)
        if kept is not None:
            return kept, True
        ratio = measure()
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps({**key, "ratio": ratio}, sort_keys=True), encoding="utf-8")
        scratch.replace(path)  # whole or absent, never torn
        return ratio, False
