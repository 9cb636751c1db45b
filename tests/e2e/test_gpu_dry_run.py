"""The GPU plan's dry run (benchmarks/gpu/run.sh --dry-run): every stage on CPU with tiny shapes, so that
the script that runs on the lent GPU keeps working between runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_the_dry_run_runs_every_stage_and_writes_the_report(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", "benchmarks/gpu/run.sh", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "gpu-results.json").read_text())
    assert results["plan"]["dry_run"]
    tests = results["tests"]
    assert (tests["passed"], tests["failed"], tests["skipped"]) == (7, 0, 0), tests
    points = results["inprocess"]
    assert not [p for p in points if p["skipped"]], "the dry run's budget cuts nothing"
    models = {"bert-base (random)", "all-MiniLM-L6-v2"}
    assert {(p["model"], p["mode"]) for p in points} == {
        (m, x) for m in models for x in ("eager", "sdpa", "compile")
    }
    assert all(p["tokens_per_s"] > 0 for p in points)
    assert [r["sentences_per_request"] for r in results["served"]] == [1, 4]
    assert all(r["errors"] == 0 and r["requests"] > 0 for r in results["served"])
    report = (tmp_path / "gpu-results.md").read_text()
    assert "DRY RUN on CPU" in report
    assert "### Goals" in report
    assert set(results["stage_seconds"]) == {"tests", "inprocess", "served"}
    assert (tmp_path / "server.log").is_file()
