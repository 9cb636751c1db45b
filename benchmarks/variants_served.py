"""Served throughput of compressed variants against the float32 base, side by side in one run.

    python -m benchmarks.variants_served --seconds 10 [--rounds 2] [NAME=FOLDER ...]

Each model is served by its own bertserve process (loopback, no result cache), one at a time, under the
same closed-loop load: concurrency 64, one real STS-B sentence per request, from wrk (almost no CPU) and
from the httpx generator. Rounds alternate the models; the best round of each counts. Without arguments
it serves the variants that ``make variants`` builds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import LoadResult, print_table, real_sentences, start_bertserve
from benchmarks.load import load_point
from models.data import default_home

DEFAULT_VARIANTS = ("minilm-int8", "minilm-pruned", "minilm-l3", "minilm-l3-pruned-int8")


def _models(arguments: list[str]) -> dict[str, str]:
    models = {"float32 base": "builtin:all-minilm-l6-v2"}
    if not arguments:
        root = default_home() / "variants"
        arguments = [f"{name}={root / name}" for name in DEFAULT_VARIANTS if (root / name).is_dir()]
    for item in arguments:
        name, _, folder = item.partition("=")
        models[name] = str(Path(folder).expanduser().resolve())
    return models


def main() -> None:
    """Serve each model in turn under the same load; print the best round of each and its ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "variants", nargs="*", help="NAME=FOLDER (default: the variants `make variants` builds)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per load point")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; models alternate within a round")
    args = parser.parse_args()
    sentences = real_sentences(2000)
    models = _models(args.variants)
    best: dict[tuple[str, str], LoadResult] = {}
    for _ in range(args.rounds):
        for name, source in models.items():
            server = start_bertserve(source)
            try:
                for client in ("wrk", "httpx"):
                    result = load_point(server, client, sentences, 64, 1, args.seconds)
                    if result.errors == 0 and (
                        (name, client) not in best or result.rps > best[name, client].rps
                    ):
                        best[name, client] = result
            finally:
                server.stop()
    rows = []
    for name in models:
        for client in ("wrk", "httpx"):
            result = best.get((name, client))
            if result is None:
                rows.append([name, client, "errors", "", "", "", ""])
                continue
            base = best.get(("float32 base", client))
            ratio = f"{result.rps / base.rps:.2f}x" if base else "-"
            rows.append([name, client, result.rps, ratio, result.p50, result.p99, result.errors])
    print_table(["model", "client", "req/s (c64 x 1)", "vs float32", "p50 ms", "p99 ms", "errors"], rows)


if __name__ == "__main__":
    main()
