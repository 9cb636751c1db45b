"""The GPU plan's Markdown report (the same tables go into benchmarks/RESULTS.md)."""

from __future__ import annotations

from typing import Any


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
    def cell(value: object) -> str:
        return f"{value:.1f}" if isinstance(value, float) else str(value)

    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
    ]


def markdown(results: dict[str, Any]) -> str:
    """Tests, in-process sweep, served vs in-process and the goals, as Markdown."""
    return "\n".join(_header(results) + _inprocess(results) + _served(results) + _goals(results))


def _header(results: dict[str, Any]) -> list[str]:
    env, plan, tests = results["environment"], results["plan"], results["tests"]
    kind = "DRY RUN on CPU (tiny shapes; not a measurement)" if plan["dry_run"] else env["device_name"]
    return [
        f"## GPU plan: {kind}",
        "",
        f"{env['date']}, torch {env['torch']}, Python {env['python']}, {env['cpu_count']} cores; "
        f"dtype {plan['dtype']}; the whole plan took {results.get('seconds', '?')} s "
        f"({', '.join(f'{k} {v} s' for k, v in results.get('stage_seconds', {}).items())}).",
        "",
        f"gpu tests: {tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped "
        f"in {tests['seconds']} s (rc {tests['rc']}).",
        "",
    ]


def _inprocess(results: dict[str, Any]) -> list[str]:
    lines = ["### In-process (engine backend: one copy in, one copy out per batch)", ""]
    return lines + _table(
        ["model", "mode", "batch", "tokens", "ms/batch", "tokens/s", "TFLOP/s", "of bf16 limit", "note"],
        [
            [
                p["model"],
                p["mode"],
                p["batch"],
                p["seq_len"],
                p["ms_per_batch"],
                round(p["tokens_per_s"]),
                p["tflops"],
                f"{p['of_limit']:.1%}",
                p["skipped"],
            ]
            for p in results["inprocess"]
        ],
    )


def _served(results: dict[str, Any]) -> list[str]:
    base = results["inprocess_sentences"]
    lines = [
        "",
        "### Served vs in-process (all-MiniLM-L6-v2, real STS-B sentences)",
        "",
        "in-process, length-sorted batches: "
        + ", ".join(f"batch {r['batch']}: {r['sentences_per_s']:.0f} sentences/s" for r in base)
        + f" (mean {base[0]['mean_tokens']:.1f} tokens)",
        "",
    ]
    return lines + _table(
        [
            "concurrency",
            "sentences/req",
            "req/s",
            "sentences/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "errors",
            "of in-process",
        ],
        [
            [
                r["concurrency"],
                r["sentences_per_request"],
                r["requests_per_s"],
                r["sentences_per_s"],
                r["p50_ms"],
                r["p95_ms"],
                r["p99_ms"],
                r["errors"],
                f"{r['sentences_per_s'] / base[0]['sentences_per_s']:.0%}",
            ]
            for r in results["served"]
        ],
    )


def _goals(results: dict[str, Any]) -> list[str]:
    g, plan = results["goals"], results["plan"]
    share, ratio = g["bert_base_256x128_of_bf16_limit"], g["minilm_served_over_inprocess"]
    return [
        "",
        "### Goals",
        "",
        "- BERT-base bf16 256 x 128 in-process >= 30% of the bf16 limit: "
        + (f"{share:.1%} ({g['bert_base_256x128_mode']})" if share is not None else "not measured")
        + f", {'met' if g['bert_base_goal_met'] else 'not met'}",
        f"- MiniLM served >= 80% of in-process at c={plan['concurrency']}: "
        + (f"{ratio:.0%}" if ratio is not None else "not measured")
        + f", {'met' if g['minilm_goal_met'] else 'not met'}",
        "",
    ]
