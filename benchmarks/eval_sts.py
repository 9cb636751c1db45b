"""STS-B Spearman of a running bertserve, measured through its HTTP API.

    python -m benchmarks.eval_sts --url http://127.0.0.1:8080 [--split test] [--model NAME]

Embeds both sentences of every pair with POST /embed (normalised), scores pairs by cosine similarity and
prints Spearman's rank correlation with the gold scores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import httpx
import numpy as np
from scipy.stats import spearmanr

from models.runtime.builtins import default_home
from models.training.data import load_sts

_CHUNK = 64


def embed_all(url: str, texts: list[str], model: str | None) -> np.ndarray:
    """Embed ``texts`` through /embed in chunks; rows in input order."""
    rows = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for start in range(0, len(texts), _CHUNK):
            payload: dict[str, object] = {"inputs": texts[start : start + _CHUNK]}
            if model:
                payload["model"] = model
            response = client.post("/embed", json=payload)
            response.raise_for_status()
            rows.append(np.array(response.json(), dtype=np.float32))
    return np.concatenate(rows)


def evaluate_sts(url: str, split: str, home: Path, model: str | None) -> float:
    """Spearman correlation (cosine vs gold) on an STS-B split, through the server at ``url``."""
    pairs = load_sts(split, home)
    unique = list(dict.fromkeys(s for p in pairs for s in (p.sentence1, p.sentence2)))
    vectors = dict(zip(unique, embed_all(url, unique, model), strict=True))
    cosine = [float(vectors[p.sentence1] @ vectors[p.sentence2]) for p in pairs]
    return float(spearmanr(cosine, [p.score for p in pairs]).statistic)


def main() -> None:
    """Print a one-row table for the given server and split."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    parser.add_argument("--model", default=None)
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    spearman = evaluate_sts(args.url, args.split, args.home or default_home(), args.model)
    print("| split | model | pairs | Spearman | seconds |")
    print("| --- | --- | --- | --- | --- |")
    pairs = len(load_sts(args.split, args.home or default_home()))
    print(
        f"| {args.split} | {args.model or 'default'} | {pairs} | {spearman:.4f} | "
        f"{time.perf_counter() - started:.1f} |"
    )


if __name__ == "__main__":
    main()
