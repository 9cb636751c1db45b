"""Reranker quality through a running bertserve's HTTP API: STS-B Spearman, and retrieve-then-rerank MRR.

    python -m benchmarks.eval_rerank --url http://127.0.0.1:8080 [--split test] [--candidates 20]

1. **Pair scores**: every STS-B pair scored by POST /rerank (query = first sentence, texts = the second
   sentences of its pairs), Spearman's rank correlation with the gold scores; next to it the bi-encoder's
   (cosine of /embed vectors), the figure the reranker has to beat.
2. **Retrieval**: each pair with a gold score of at least 4 (a near-paraphrase) is a query whose gold
   partner is hidden among ``--candidates`` candidates: the partner and the bi-encoder's nearest other
   second sentences of the split. MRR of the partner's rank by the bi-encoder alone, and after reranking
   the same candidates with /rerank.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np
from scipy.stats import spearmanr

from benchmarks.eval_sts import embed_all
from models.runtime.builtins import default_home
from models.training.data import StsPair, load_sts

_MAX_TEXTS = 256


def rerank_scores(client: httpx.Client, query: str, texts: list[str], model: str | None) -> np.ndarray:
    """Raw relevance scores of ``texts`` for ``query``: logits (order-preserving: sigmoid is monotonic), or
    a blended reranker's scores (raw_scores changes nothing there)."""
    scores = np.empty(len(texts), dtype=np.float64)
    for start in range(0, len(texts), _MAX_TEXTS):
        body: dict[str, object] = {
            "query": query,
            "texts": texts[start : start + _MAX_TEXTS],
            "raw_scores": True,
        }
        if model:
            body["model"] = model
        response = client.post("/rerank", json=body)
        response.raise_for_status()
        for result in response.json():
            scores[start + result["index"]] = result["score"]
    return scores


def pair_spearman(client: httpx.Client, pairs: list[StsPair], model: str | None) -> float:
    """Spearman of the reranker's pair scores with the gold scores (one request per first sentence)."""
    by_query: dict[str, list[int]] = defaultdict(list)
    for index, pair in enumerate(pairs):
        by_query[pair.sentence1].append(index)
    scores = np.empty(len(pairs))
    for query, indices in by_query.items():
        scores[indices] = rerank_scores(client, query, [pairs[i].sentence2 for i in indices], model)
    return float(spearmanr(scores, [p.score for p in pairs]).statistic)


def retrieval_mrr(
    client: httpx.Client,
    pairs: list[StsPair],
    vectors: dict[str, np.ndarray],
    candidates: int,
    model: str | None,
) -> tuple[float, float, int]:
    """(bi-encoder MRR, bi-encoder then reranker MRR, queries) over the pairs with gold >= 4."""
    corpus = list(dict.fromkeys(p.sentence2 for p in pairs))
    matrix = np.stack([vectors[text] for text in corpus])
    bi, reranked = [], []
    queries = [p for p in pairs if p.score >= 4.0 and p.sentence1 != p.sentence2]
    for pair in queries:
        cosine = matrix @ vectors[pair.sentence1]
        gold = corpus.index(pair.sentence2)
        nearest = [i for i in np.argsort(-cosine, kind="stable") if i != gold][: candidates - 1]
        pool = [gold, *nearest]
        bi_rank = 1 + sum(cosine[i] > cosine[gold] for i in nearest)
        scores = rerank_scores(client, pair.sentence1, [corpus[i] for i in pool], model)
        rerank_rank = 1 + int((scores[1:] > scores[0]).sum())
        bi.append(1 / bi_rank)
        reranked.append(1 / rerank_rank)
    return float(np.mean(bi)), float(np.mean(reranked)), len(queries)


def main() -> None:
    """Print both figures as one table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--embed-model", default=None, help="default: the first embedder")
    parser.add_argument(
        "--rerank-model",
        action="append",
        help="a reranker to measure, one column each (repeatable; default: the first reranker)",
    )
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()
    pairs = load_sts(args.split, args.home or default_home())
    started = time.perf_counter()
    texts = list(dict.fromkeys(s for p in pairs for s in (p.sentence1, p.sentence2)))
    vectors = dict(zip(texts, embed_all(args.url, texts, args.embed_model), strict=True))
    cosine = [float(vectors[p.sentence1] @ vectors[p.sentence2]) for p in pairs]
    bi_spearman = float(spearmanr(cosine, [p.score for p in pairs]).statistic)
    rerankers: list[str | None] = args.rerank_model or [None]
    spearmans, mrrs = [], []
    with httpx.Client(base_url=args.url, timeout=300) as client:
        for model in rerankers:
            spearmans.append(pair_spearman(client, pairs, model))
            bi_mrr, rerank_mrr, queries = retrieval_mrr(client, pairs, vectors, args.candidates, model)
            mrrs.append(rerank_mrr)
    seconds = time.perf_counter() - started
    print(
        f"STS-B {args.split}: {len(pairs)} pairs; retrieval: {queries} queries (gold >= 4), "
        f"{args.candidates} candidates each; {seconds:.0f} s in all"
    )
    names = " | ".join(f"{model or 'reranker'} (/rerank)" for model in rerankers)
    print(f"| figure | bi-encoder (cosine of /embed) | {names} |")
    print("| --- | --- |" + " --- |" * len(rerankers))
    print(
        f"| STS-B {args.split} Spearman | {bi_spearman:.4f} | "
        + " | ".join(f"{v:.4f}" for v in spearmans)
        + " |"
    )
    print(
        f"| MRR, gold among {args.candidates} candidates (reranking the bi-encoder's) | {bi_mrr:.4f} | "
        + " | ".join(f"{v:.4f}" for v in mrrs)
        + " |"
    )


if __name__ == "__main__":
    main()
