"""The GPU plan's pieces that decide what is measured and reported: FLOPs per token, the shapes of each
mode, the goals, the merged load results and the report. (The whole plan runs in tests/e2e, dry.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.common import LoadResult
from benchmarks.gpu.inprocess import shapes_for, sweep
from benchmarks.gpu.plan import goals
from benchmarks.gpu.report import markdown
from benchmarks.gpu.served import merge, split_cores
from benchmarks.gpu.shapes import BERT_BASE, DRY_PLAN, GPU_PLAN, Deadline, flops_per_token

pytestmark = pytest.mark.unit

MINILM = {"hidden_size": 384, "num_hidden_layers": 6, "intermediate_size": 1536}


def test_flops_per_token_count_the_matrix_products() -> None:
    # all-MiniLM-L6-v2 at 128 tokens: ~21.5 MFLOP per token (benchmarks/load.py's figure).
    assert flops_per_token(MINILM, 128) == pytest.approx(22.4e6, rel=0.01)
    assert flops_per_token(MINILM, 0) == pytest.approx(21.2e6, rel=0.01)
    # BERT-base: ~170 MFLOP per token plus attention (2 x 85 M weights in the layers).
    assert flops_per_token(BERT_BASE, 0) == pytest.approx(2 * 12 * (4 * 768**2 + 2 * 768 * 3072))


def test_the_gpu_plan_covers_the_issue_shapes_and_fits_its_eight_minutes() -> None:
    assert GPU_PLAN.batches[0] == 1
    assert GPU_PLAN.batches[-1] == 512
    assert set(GPU_PLAN.seq_lens) == {32, 128}
    assert (256, 128) in shapes_for(GPU_PLAN, "eager")
    assert (256, 128) in shapes_for(GPU_PLAN, "cudagraphs")
    assert len(shapes_for(GPU_PLAN, "compile")) < len(shapes_for(GPU_PLAN, "sdpa"))
    assert GPU_PLAN.concurrency == 256
    assert GPU_PLAN.per_request == (1, 32)
    served = len(GPU_PLAN.per_request) * GPU_PLAN.load_seconds
    rest = 60  # the server's start, the random BERT-base folder, the in-process sentence rates, the report
    assert sum(GPU_PLAN.budget_s.values()) + served + rest <= 8 * 60 - 30, "run.sh kills the plan at 8 min"
    assert sum(DRY_PLAN.budget_s.values()) <= 240, "run.sh --dry-run kills the plan at 4 min"
    assert DRY_PLAN.modes[:2] == GPU_PLAN.modes[:2]


def _point(model: str, mode: str, of_limit: float, skipped: str = "") -> dict[str, object]:
    return {
        "model": model,
        "mode": mode,
        "batch": 256,
        "seq_len": 128,
        "of_limit": of_limit,
        "skipped": skipped,
        "ms_per_batch": 1.0,
        "tokens_per_s": 1.0,
        "tflops": 1.0,
    }


def _results(served_sps: float) -> dict[str, object]:
    return {
        "plan": {**GPU_PLAN.describe()},
        "environment": {
            "date": "d",
            "torch": "t",
            "python": "p",
            "cpu_count": 16,
            "device_name": "NVIDIA H200",
        },
        "tests": {"passed": 7, "failed": 0, "skipped": 0, "seconds": 1.0, "rc": 0},
        "inprocess": [
            _point("bert-base (random)", "eager", 0.21),
            _point("bert-base (random)", "compile", 0.34),
            _point("bert-base (random)", "cudagraphs", 0.9, skipped="time budget"),
            _point("all-MiniLM-L6-v2", "sdpa", 0.5),
        ],
        "inprocess_sentences": [{"batch": 256, "sentences_per_s": 10_000.0, "mean_tokens": 15.0}],
        "served": [
            {
                "concurrency": 256,
                "sentences_per_request": 1,
                "sentences_per_s": served_sps,
                "requests_per_s": 1.0,
                "p50_ms": 1.0,
                "p95_ms": 1.0,
                "p99_ms": 1.0,
                "errors": 0,
            },
        ],
    }


def test_goals_take_the_best_measured_mode_and_the_single_sentence_load() -> None:
    results = _results(served_sps=8_500.0)
    found = goals(results)
    assert found["bert_base_256x128_mode"] == "compile"
    assert found["bert_base_goal_met"]
    assert found["minilm_served_over_inprocess"] == pytest.approx(0.85)
    assert found["minilm_goal_met"]
    assert not goals(_results(served_sps=7_000.0))["minilm_goal_met"]


def test_the_report_states_what_ran_and_the_goals() -> None:
    results = _results(served_sps=7_000.0)
    results["goals"] = goals(results)
    text = markdown(results)
    assert "## GPU plan: NVIDIA H200" in text
    assert "| bert-base (random) | compile | 256 | 128 |" in text
    assert "time budget" in text
    assert "34.0% (compile), met" in text
    assert "at c=256: 70%, not met" in text
    dry = {**results, "plan": DRY_PLAN.describe()}
    assert "DRY RUN on CPU" in markdown(dry)


def test_load_from_several_processes_merges_exactly() -> None:
    one = LoadResult(3, 3, 0, 2.0, 0, 0, 0, latencies=[1.0, 2.0, 3.0])
    two = LoadResult(2, 2, 1, 2.5, 0, 0, 0, latencies=[100.0, 200.0])
    merged = merge([one, two])
    assert (merged.requests, merged.sentences, merged.errors, merged.seconds) == (5, 5, 1, 2.5)
    assert merged.p50 == 3.0
    assert merged.p99 == pytest.approx(196.0)


def test_the_server_and_the_load_get_separate_cores() -> None:
    assert split_cores(2) == (frozenset(), frozenset())
    server, load = split_cores(16)
    assert len(server) == 6
    assert server.isdisjoint(load)
    assert server | load == set(range(16))


def test_past_the_budget_nothing_is_loaded_and_every_point_says_so(tmp_path: Path) -> None:
    points = sweep("m", tmp_path / "no-such-model", MINILM, DRY_PLAN, Deadline(-1))
    assert len(points) == 2 * len(shapes_for(DRY_PLAN, "eager")) + len(DRY_PLAN.compiled_shapes)
    assert {p.skipped for p in points} == {"time budget"}
