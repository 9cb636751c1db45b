"""The retrieval API driven by real, unmodified clients against the real server on the default models:
Cohere's SDK (v2 rerank), huggingface_hub's InferenceClient (TEI's documented usage), and LlamaIndex's
TEI embedding and rerank integrations."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

QUERY = "How do I bake bread at home?"
DOCUMENTS = [
    "The stock market closed higher on Friday.",
    "Knead the dough, let it rise for an hour, then bake it at 220 degrees.",
    "Cats sleep for most of the day.",
    "Home-made bread needs flour, water, yeast and salt.",
]
#: The two documents about bread, which any sensible reranker puts first.
RELEVANT = {1, 3}


def test_cohere_client_v2_rerank(server: Server) -> None:
    import cohere

    client = cohere.ClientV2(base_url=server.url, api_key="unused")
    response = client.rerank(model="minilm-reranker", query=QUERY, documents=DOCUMENTS, top_n=2)
    assert {result.index for result in response.results} == RELEVANT
    scores = [result.relevance_score for result in response.results]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < score < 1 for score in scores)
    assert response.meta is not None
    assert response.meta.billed_units.search_units == 1


def test_huggingface_hub_inference_client(server: Server) -> None:
    from huggingface_hub import InferenceClient

    client = InferenceClient(server.url)
    vector = np.asarray(client.feature_extraction("Hello world"))
    served = np.asarray(httpx.post(f"{server.url}/embed", json={"inputs": "Hello world"}).json())
    np.testing.assert_allclose(vector, served, atol=1e-6)
    similarity = client.sentence_similarity(
        "A man is playing a guitar.", ["Someone plays an instrument.", "The stock market fell."]
    )
    assert similarity[0] > similarity[1]
    # TEI answers /predict for one text with a flat list; the client reads its first (best) label.
    predicted = InferenceClient(f"{server.url}/predict").text_classification("A gorgeous, moving film.")
    best = predicted[0] if isinstance(predicted, list) else predicted
    assert best.label == "positive"
    assert best.score > 0.5


def test_llama_index_tei_embedding_and_rerank(server: Server) -> None:
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference
    from llama_index.postprocessor.tei_rerank import TextEmbeddingInference as TEIRerank

    embedder = TextEmbeddingsInference(model_name="all-MiniLM-L6-v2", base_url=server.url, timeout=60)
    vectors = np.asarray(embedder.get_text_embedding_batch(DOCUMENTS))
    query = np.asarray(embedder.get_query_embedding(QUERY))
    assert vectors.shape == (4, 384)
    assert int(np.argmax(vectors @ query)) in RELEVANT

    nodes = [NodeWithScore(node=TextNode(text=text), score=0.0) for text in DOCUMENTS]
    reranker = TEIRerank(base_url=server.url, top_n=2)
    ranked = reranker.postprocess_nodes(nodes, QueryBundle(QUERY))
    assert {node.node.get_content() for node in ranked} == {DOCUMENTS[i] for i in RELEVANT}
    assert ranked[0].score is not None
    assert ranked[0].score >= ranked[1].score
