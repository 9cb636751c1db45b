"""The GPU plan, start to end: gpu tests, in-process sweep, served load, report (JSON and Markdown).

    python -m benchmarks.gpu.plan --out DIR [--dry-run]

Run it through ``benchmarks/gpu/run.sh``, which on the lent machine first installs the carried wheels.
``--dry-run`` runs the same stages on CPU with tiny shapes in well under a minute (CI runs it).
Environment: ``GPURUN_EMBEDDER`` is the embedder's folder (default: the builtin all-MiniLM-L6-v2), and
``BERTSERVE_HOME`` holds the datasets (STS-B sentences, the sentiment held-out slice).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import real_sentences
from benchmarks.gpu.inprocess import as_rows, real_sentences_rate, sweep
from benchmarks.gpu.report import markdown
from benchmarks.gpu.served import measure_served
from benchmarks.gpu.shapes import BERT_BASE, DRY_PLAN, GPU_PLAN, TINY, Deadline, Plan, random_model_folder
from models.runtime.builtins import minilm_path


def embedder_folder() -> Path:
    """The embedder the plan measures: ``GPURUN_EMBEDDER`` (the carried float16 copy) or the builtin."""
    return Path(os.environ.get("GPURUN_EMBEDDER") or minilm_path())


def run_tests(plan: Plan, out: Path) -> dict[str, Any]:
    """``pytest -m gpu`` in a subprocess (its own CUDA context), bounded by the plan's budget."""
    junit = out / "gpu-tests.xml"
    env = {**os.environ, "GPURUN_DRY": "1" if plan.dry_run else "0"}
    argv = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-q", "-p", "no:cacheprovider"]
    started = time.monotonic()
    with open(out / "gpu-tests.log", "wb") as log:
        try:
            rc = subprocess.run(
                [*argv, f"--junitxml={junit}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=plan.budget_s["tests"],
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            rc = -1
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    if junit.is_file():
        suite = ET.parse(junit).getroot().find("testsuite")
        if suite is not None:
            total = int(suite.get("tests", 0))
            failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skipped = int(suite.get("skipped", 0))
            counts = {"passed": total - failed - skipped, "failed": failed, "skipped": skipped}
        junit.unlink()
    return {"rc": rc, "timed_out": rc == -1, "seconds": round(time.monotonic() - started, 1), **counts}


def model_folders(plan: Plan, scratch: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """name -> (folder, config) of the two measured models (tiny random ones in the dry run)."""
    embedder = embedder_folder()
    if plan.dry_run:
        embedder = random_model_folder(TINY, scratch / "tiny-embedder", embedder)
    base = random_model_folder(TINY if plan.dry_run else BERT_BASE, scratch / "bert-base", embedder)
    folders = {"bert-base (random)": base, "all-MiniLM-L6-v2": embedder}
    return {
        name: (folder, json.loads((folder / "config.json").read_text(encoding="utf-8")))
        for name, folder in folders.items()
    }


def environment(plan: Plan) -> dict[str, Any]:
    """What ran the plan."""
    cuda = plan.device.startswith("cuda") and torch.cuda.is_available()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
        "cpu_count": os.cpu_count(),
    }


def run_plan(plan: Plan, out: Path) -> dict[str, Any]:
    """Every stage of ``plan``; the results (also written to ``out``), with each stage's seconds."""
    out.mkdir(parents=True, exist_ok=True)
    clock = {"start": time.monotonic()}
    results: dict[str, Any] = {"plan": plan.describe(), "environment": environment(plan)}
    results["tests"] = run_tests(plan, out)
    clock["tests"] = time.monotonic()
    sentences = real_sentences(plan.sentences)
    with tempfile.TemporaryDirectory(prefix="gpu-plan-") as scratch:
        models = model_folders(plan, Path(scratch))
        deadline = Deadline(plan.budget_s["inprocess"])
        points = []
        for index, (name, (folder, config)) in enumerate(models.items()):
            share = Deadline(deadline.left / (len(models) - index))
            points += as_rows(sweep(name, folder, config, plan, share))
        results["inprocess"] = points
        embedder = models["all-MiniLM-L6-v2"][0]
        results["inprocess_sentences"] = [
            real_sentences_rate(embedder, plan, sentences, size) for size in (plan.concurrency, 32)
        ]
        clock["inprocess"] = time.monotonic()
        results["served"] = measure_served(embedder, plan, sentences, out / "server.log")
        clock["served"] = time.monotonic()
    results["goals"] = goals(results)
    marks = list(clock.items())
    results["stage_seconds"] = {name: round(at - marks[i][1], 1) for i, (name, at) in enumerate(marks[1:])}
    results["seconds"] = round(time.monotonic() - clock["start"], 1)
    (out / "gpu-results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (out / "gpu-results.md").write_text(markdown(results), encoding="utf-8")
    return results


def goals(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's two goals, as measured: BERT-base 256 x 128 in-process share of the bf16 limit (best
    mode), and MiniLM served at the plan's concurrency (single sentences) over in-process."""
    base = [
        p
        for p in results["inprocess"]
        if p["model"].startswith("bert-base")
        and (p["batch"], p["seq_len"]) == (256, 128)
        and not p["skipped"]
    ]
    served = [r for r in results["served"] if r["sentences_per_request"] == 1]
    inprocess = results["inprocess_sentences"][0]["sentences_per_s"]
    best = max(base, key=lambda p: p["of_limit"]) if base else None
    return {
        "bert_base_256x128_of_bf16_limit": best["of_limit"] if best else None,
        "bert_base_256x128_mode": best["mode"] if best else None,
        "bert_base_goal_met": bool(best and best["of_limit"] >= 0.30),
        "minilm_served_over_inprocess": served[0]["sentences_per_s"] / inprocess if served else None,
        "minilm_goal_met": bool(served and served[0]["sentences_per_s"] >= 0.80 * inprocess),
    }


def main() -> None:
    """Run the plan and print the Markdown report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON, Markdown and logs")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, seconds (CI)")
    args = parser.parse_args()
    plan = DRY_PLAN if args.dry_run else GPU_PLAN
    if not plan.dry_run and not torch.cuda.is_available():
        sys.exit("no CUDA device: run on the lent GPU machine, or pass --dry-run")
    results = run_plan(plan, args.out)
    print(markdown(results))
    sys.exit(0 if results["tests"]["failed"] == 0 and results["tests"]["rc"] == 0 else 1)


if __name__ == "__main__":
    main()
