"""The real server on the device, loaded from a multi-process load generator on the other cores.

The server runs the embedder with the engine's defaults for the device (batch limits sized from its
memory); the load comes from ``processes`` processes of :func:`benchmarks.common.run_load` clients
(closed loop, ``concurrency`` connections in all), pinned to the cores the server does not use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from benchmarks.common import LoadResult, start_bertserve
from benchmarks.gpu.loadgen import LoadJob
from benchmarks.gpu.shapes import Plan


def merge(results: list[LoadResult]) -> LoadResult:
    """One load point's result from its processes' (latencies pooled, so percentiles are exact)."""
    latencies = [ms for result in results for ms in result.latencies]
    p50, p95, p99 = (float(np.percentile(latencies, q)) for q in (50, 95, 99))
    return LoadResult(
        sum(r.requests for r in results),
        sum(r.sentences for r in results),
        sum(r.errors for r in results),
        max(r.seconds for r in results),
        p50,
        p95,
        p99,
        latencies,
    )


def split_cores(total: int) -> tuple[frozenset[int], frozenset[int]]:
    """(server cores, load cores): the server gets 6 of 16 (event loop, batcher, tokenizer threads), the
    load the rest. Below 8 cores nothing is pinned (empty sets)."""
    if total < 8:
        return frozenset(), frozenset()
    server = max(2, total * 3 // 8)
    return frozenset(range(server)), frozenset(range(server, total))


def measure_served(folder: Path, plan: Plan, sentences: list[str], log_to: Path) -> list[dict[str, object]]:
    """Every ``per_request`` point of ``plan`` against one server started on the plan's device."""
    server_cores, load_cores = split_cores(os.cpu_count() or 1)
    everything = os.sched_getaffinity(0)
    if server_cores:
        os.sched_setaffinity(0, server_cores)  # the server process inherits these cores
    try:
        server = start_bertserve(f"{folder},device={plan.device},dtype={plan.dtype},runtime=torch")
    finally:
        os.sched_setaffinity(0, everything)
    rows: list[dict[str, object]] = []
    try:
        for per_request in plan.per_request:
            share = plan.concurrency // plan.processes
            jobs = [
                LoadJob(
                    server.url,
                    sentences[i :: plan.processes],
                    share,
                    per_request,
                    plan.load_seconds,
                    sorted(load_cores),
                )
                for i in range(plan.processes)
            ]
            result = merge(run_processes(jobs))
            rows.append(
                {
                    "concurrency": share * plan.processes,
                    "sentences_per_request": per_request,
                    "requests_per_s": result.rps,
                    "sentences_per_s": result.sps,
                    "p50_ms": result.p50,
                    "p95_ms": result.p95,
                    "p99_ms": result.p99,
                    "errors": result.errors,
                    "requests": result.requests,
                }
            )
    finally:
        server.stop()
        shutil.copy("/tmp/bench-bertserve.log", log_to)
    return rows


def run_processes(jobs: list[LoadJob]) -> list[LoadResult]:
    """Run each job in a ``benchmarks.gpu.loadgen`` process, all at once; their results."""
    argv = [sys.executable, "-m", "benchmarks.gpu.loadgen"]
    processes = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in jobs]
    for process, job in zip(processes, jobs, strict=True):
        assert process.stdin is not None
        process.stdin.write(json.dumps(asdict(job)).encode())
        process.stdin.close()
    results = []
    for process, job in zip(processes, jobs, strict=True):
        assert process.stdout is not None
        out = process.stdout.read()
        if process.wait(timeout=job.seconds + 120) != 0:
            raise RuntimeError(f"load process exited with {process.returncode}")
        results.append(LoadResult(**json.loads(out)))
    return results
