"""Reranking and text pairs on the real app: /rerank (TEI), /v2/rerank (Cohere), /v1/rerank (Cohere v1 and
Jina), and pairs on /classify and /predict, against plain transformers on the same tiny cross-encoder."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.app import create_app
from service.settings import Settings
from tests.integration.conftest import load_failure, started_client
from tests.reference import reference_embeddings, reference_pair_logits

pytestmark = pytest.mark.integration

QUERY = "What is the capital of France?"
DOCS = [
    "Paris is the capital and largest city of France.",
    "Bananas are yellow.",
    "The Eiffel Tower is in Paris.",
    "Berlin is the capital of Germany, a country in Europe with many rivers and old towns.",
]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@pytest.fixture
def rerank_settings(
    make_settings: Callable[..., Settings], tiny_embedder: Path, tiny_classifier: Path, tiny_reranker: Path
) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        models = [
            {"name": "tiny-embed", "source": str(tiny_embedder)},
            {"name": "tiny-classify", "source": str(tiny_classifier)},
            {"name": "tiny-rerank", "source": str(tiny_reranker)},
        ]
        return make_settings(models=models, **overrides)

    return make


@pytest.fixture
async def rclient(rerank_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    async for client in started_client(create_app(rerank_settings())):
        yield client


async def test_tei_rerank_scores_pairs_like_transformers(
    rclient: httpx.AsyncClient, tiny_reranker: Path
) -> None:
    response = await rclient.post("/rerank", json={"query": QUERY, "texts": DOCS, "return_text": True})
    assert response.status_code == 200, response.text
    results = response.json()
    expected = _sigmoid(reference_pair_logits(tiny_reranker, [(QUERY, d) for d in DOCS])[:, 0])
    assert sorted(r["index"] for r in results) == list(range(len(DOCS)))
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    for result in results:
        assert result["score"] == pytest.approx(float(expected[result["index"]]), abs=1e-5)
        assert result["text"] == DOCS[result["index"]]
    raw = (await rclient.post("/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True})).json()
    assert "text" not in raw[0]
    logits = reference_pair_logits(tiny_reranker, [(QUERY, d) for d in DOCS])[:, 0]
    assert {r["index"]: r["score"] for r in raw} == pytest.approx(dict(enumerate(logits.tolist())), abs=1e-4)


async def test_cohere_v2_shape_top_n_and_max_tokens(rclient: httpx.AsyncClient, tiny_reranker: Path) -> None:
    body = {"model": "tiny-rerank", "query": QUERY, "documents": DOCS, "top_n": 2}
    answer = (await rclient.post("/v2/rerank", json=body)).json()
    assert set(answer) == {"id", "results", "meta"}
    assert answer["meta"] == {"billed_units": {"search_units": 1}}
    tei = (await rclient.post("/rerank", json={"query": QUERY, "texts": DOCS})).json()
    assert [(r["index"], r["relevance_score"]) for r in answer["results"]] == [
        (r["index"], pytest.approx(r["score"], abs=1e-6)) for r in tei[:2]
    ]
    clipped = (await rclient.post("/v2/rerank", json={**body, "top_n": 10, "max_tokens_per_doc": 3})).json()
    short = [" ".join(d.split()[:3]) for d in DOCS]  # these words are one token each
    expected = _sigmoid(reference_pair_logits(tiny_reranker, [(QUERY, d) for d in short])[:, 0])
    for result in clipped["results"]:
        assert result["relevance_score"] == pytest.approx(float(expected[result["index"]]), abs=1e-5)


async def test_v1_rerank_documents_as_objects(rclient: httpx.AsyncClient) -> None:
    documents = [DOCS[0], {"text": DOCS[1]}, DOCS[2]]
    body = {"query": QUERY, "documents": documents, "return_documents": True, "top_n": 3}
    response = await rclient.post("/v1/rerank", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == "tiny-rerank"
    assert {r["document"]["text"] for r in answer["results"]} == set(DOCS[:3])
    assert answer["usage"]["total_tokens"] == int(response.headers["x-compute-tokens"]) > 0


async def test_rerank_errors(rclient: httpx.AsyncClient, rerank_settings: Callable[..., Settings]) -> None:
    empty = await rclient.post("/rerank", json={"query": QUERY, "texts": []})
    assert (empty.status_code, empty.json()["error_type"]) == (400, "empty")
    blank_query = await rclient.post("/rerank", json={"query": "", "texts": DOCS})
    assert blank_query.status_code == 400
    for model in ("tiny-embed", "tiny-classify"):  # an embedder, and a classifier with three labels
        wrong = await rclient.post("/v2/rerank", json={"model": model, "query": QUERY, "documents": DOCS})
        assert (wrong.status_code, wrong.json()["error_type"]) == (400, "wrong_task")
    bad = await rclient.post("/v1/rerank", json={"query": QUERY, "documents": [{"txt": "x"}]})
    assert bad.status_code == 422
    assert "error_type" in bad.json()
    too_long = await rclient.post(
        "/rerank", json={"query": QUERY, "texts": ["word " * 100], "truncate": False}
    )
    assert (too_long.status_code, too_long.json()["error_type"]) == (422, "input_too_long")
    async for small in started_client(create_app(rerank_settings(max_rerank_documents=3))):
        over = await small.post("/rerank", json={"query": QUERY, "texts": DOCS})
        assert over.status_code == 413
        assert "limit is 3" in over.json()["error"]


async def test_many_documents_spread_over_batches_and_cached(
    rerank_settings: Callable[..., Settings], tiny_reranker: Path
) -> None:
    docs = [f"document number {i} about {'paris ' * (i % 7)}" for i in range(40)]
    expected = _sigmoid(reference_pair_logits(tiny_reranker, [(QUERY, d) for d in docs])[:, 0])
    async for client in started_client(create_app(rerank_settings(max_batch_requests=4))):
        first = await client.post("/rerank", json={"query": QUERY, "texts": docs})
        scores = {r["index"]: r["score"] for r in first.json()}
        np.testing.assert_allclose([scores[i] for i in range(40)], expected, atol=1e-5)
        assert int(first.headers["x-compute-tokens"]) > 0
        again = await client.post("/rerank", json={"query": QUERY, "texts": [*docs[:10], "a new one"]})
        # Only the new pair is computed: [CLS] what is the capital of france ? [SEP] a new one [SEP].
        assert int(again.headers["x-compute-tokens"]) == 1 + 7 + 1 + 3 + 1
        other_query = await client.post("/rerank", json={"query": "Another question", "texts": docs[:2]})
        assert int(other_query.headers["x-compute-tokens"]) > 0


async def test_pairs_on_classify_and_predict(rclient: httpx.AsyncClient, tiny_classifier: Path) -> None:
    pair = ["A man is eating.", "Someone eats food."]
    expected = reference_pair_logits(tiny_classifier, [tuple(pair)])[0]  # type: ignore[list-item]
    probs = np.exp(expected - expected.max())
    probs /= probs.sum()
    body = {"inputs": [pair, "just a text"], "model": "tiny-classify", "raw_scores": True}
    classified = (await rclient.post("/classify", json=body)).json()
    assert len(classified) == 2
    by_label = {item["label"]: item["score"] for item in classified[0]}
    assert sorted(by_label.values()) == pytest.approx(sorted(expected.tolist()), abs=1e-4)
    flat = (await rclient.post("/predict", json={"inputs": pair, "model": "tiny-classify"})).json()
    assert isinstance(flat[0], dict)
    assert max(item["score"] for item in flat) == pytest.approx(float(probs.max()), abs=1e-5)
    nested = await rclient.post(
        "/predict", json={"inputs": [["just a text"], pair], "model": "tiny-classify"}
    )
    assert [len(row) for row in nested.json()] == [3, 3]
    assert nested.json()[1] == flat
    three = await rclient.post("/predict", json={"inputs": ["a", "b", "c"]})
    assert three.status_code == 422
    # A one-label classifier's score is a sigmoid, not a softmax (which would always say 1.0).
    one = (await rclient.post("/classify", json={"inputs": [pair], "model": "tiny-rerank"})).json()
    assert 0 < one[0][0]["score"] < 1


async def test_pair_truncated_longest_first(rclient: httpx.AsyncClient, tiny_classifier: Path) -> None:
    pair = ("short question?", "a very long document " * 30)
    expected = reference_pair_logits(tiny_classifier, [pair], max_length=64)[0]
    body = {"inputs": [list(pair)], "model": "tiny-classify", "raw_scores": True}
    response = await rclient.post("/classify", json=body)
    assert int(response.headers["x-compute-tokens"]) == 64
    scores = sorted(item["score"] for item in response.json()[0])
    assert scores == pytest.approx(sorted(expected.tolist()), abs=1e-4)
    refused = await rclient.post("/classify", json={**body, "truncate": False})
    assert refused.status_code == 422
    assert "64" in refused.json()["error"]


def test_search_units_per_hundred_documents() -> None:
    assert [math.ceil(n / 100) for n in (1, 100, 101)] == [1, 1, 2]


async def test_blended_reranker_mixes_probability_and_partner_cosine(
    make_settings: Callable[..., Settings], tiny_embedder: Path, tiny_reranker: Path
) -> None:
    """rerank_with: score = weight x sigmoid(cross-encoder logit) + (1 - weight) x cosine of the partner
    embedder's vectors, the same with raw_scores, on every rerank shape; /info names the partner."""
    models = [
        {"name": "tiny-embed", "source": str(tiny_embedder)},
        {
            "name": "tiny-rerank",
            "source": str(tiny_reranker),
            "rerank_with": "tiny-embed",
            "rerank_weight": 0.3,
        },
    ]
    logits = reference_pair_logits(tiny_reranker, [(QUERY, d) for d in DOCS])[:, 0]
    vectors = reference_embeddings(tiny_embedder, [QUERY, *DOCS])
    expected = 0.3 * _sigmoid(logits) + 0.7 * (vectors[1:] @ vectors[0])
    async for client in started_client(create_app(make_settings(models=models))):
        for raw in (False, True):
            answer = (
                await client.post("/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": raw})
            ).json()
            scores = {item["index"]: item["score"] for item in answer}
            np.testing.assert_allclose([scores[i] for i in range(len(DOCS))], expected, atol=1e-4)
        body = {"model": "tiny-rerank", "query": QUERY, "documents": DOCS}
        cohere = (await client.post("/v2/rerank", json=body)).json()["results"]
        assert [r["index"] for r in cohere] == np.argsort(-expected, kind="stable").tolist()
        info = {m["name"]: m for m in (await client.get("/info")).json()["models"]}
        assert (info["tiny-rerank"]["rerank_with"], info["tiny-rerank"]["rerank_weight"]) == (
            "tiny-embed",
            0.3,
        )
        assert info["tiny-embed"]["rerank_with"] is None


async def test_rerank_with_a_non_embedder_fails_the_load(
    make_settings: Callable[..., Settings], tiny_classifier: Path, tiny_reranker: Path
) -> None:
    models = [
        {"name": "tiny-classify", "source": str(tiny_classifier)},
        {"name": "tiny-rerank", "source": str(tiny_reranker), "rerank_with": "tiny-classify"},
    ]
    app = create_app(make_settings(models=models))
    async with app.router.lifespan_context(app):
        assert "is a classify model, not an embedder" in await load_failure(app)
