"""One process of the served stage's load generator: a :class:`LoadJob` as JSON on stdin, its
:class:`benchmarks.common.LoadResult` as JSON on stdout.

A process of its own, started with ``python -m benchmarks.gpu.loadgen``, imports only
:mod:`benchmarks.common` (no PyTorch), so that eight of them start in a fraction of a second; a
multiprocessing pool would import the plan's main module, PyTorch and all, in every worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import asdict, dataclass

from benchmarks.common import LoadResult, run_load


@dataclass(frozen=True)
class LoadJob:
    """One load process's share of a load point."""

    url: str
    sentences: list[str]
    concurrency: int
    per_request: int
    seconds: float
    cores: list[int]


def _tei_body(batch: list[str]) -> dict[str, object]:
    return {"inputs": batch}


def run_job(job: LoadJob) -> LoadResult:
    """The closed-loop load of ``job`` against its server, from the cores it names (if any)."""
    if job.cores:
        os.sched_setaffinity(0, job.cores)
    return asyncio.run(
        run_load(
            job.url, "/embed", _tei_body, job.sentences, job.concurrency, job.per_request, 10**7, job.seconds
        )
    )


def main() -> None:
    """Read the job, run it, write the result."""
    job = LoadJob(**json.load(sys.stdin))
    json.dump(asdict(run_job(job)), sys.stdout)


if __name__ == "__main__":
    main()
