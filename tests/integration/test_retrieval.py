"""/similarity, /tokenize, /decode, POST / and /invocations, prompts and long inputs on the real app."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from transformers import AutoTokenizer

from models.runtime.errors import ModelLoadError
from models.runtime.tokenization import TextTokenizer
from service.app import create_app
from service.settings import Settings
from tests.integration.conftest import started_client
from tests.reference import reference_embeddings

pytestmark = pytest.mark.integration

SOURCE = "A man is playing a guitar."
SENTENCES = ["Someone plays an instrument.", "The stock market fell.", "A man is playing a guitar."]


async def test_similarity_is_the_cosine_of_embeddings(client: httpx.AsyncClient, tiny_embedder: Path) -> None:
    body = {"inputs": {"source_sentence": SOURCE, "sentences": SENTENCES}, "parameters": {"truncate": True}}
    response = await client.post("/similarity", json=body)
    assert response.status_code == 200, response.text
    vectors = reference_embeddings(tiny_embedder, [SOURCE, *SENTENCES])
    np.testing.assert_allclose(response.json(), vectors[1:] @ vectors[0], atol=1e-5)
    assert response.json()[2] == pytest.approx(1.0, abs=1e-5)
    assert "x-total-time" in response.headers
    empty = await client.post("/similarity", json={"inputs": {"source_sentence": SOURCE, "sentences": []}})
    assert empty.status_code == 200
    assert empty.json() == []
    blank = await client.post("/similarity", json={"inputs": {"source_sentence": "", "sentences": ["x"]}})
    assert blank.status_code == 400


async def test_tokenize_matches_the_models_tokenizer(client: httpx.AsyncClient, tiny_embedder: Path) -> None:
    texts = ["Hello world!", "Ünïcödé 🚀 tokens"]
    response = await client.post("/tokenize", json={"inputs": texts})
    assert response.status_code == 200, response.text
    reference = AutoTokenizer.from_pretrained(str(tiny_embedder))
    for text, tokens in zip(texts, response.json(), strict=True):
        assert [t["id"] for t in tokens] == reference(text)["input_ids"]
        assert tokens[0] == {"id": 101, "text": "[CLS]", "special": True, "start": None, "stop": None}
        for token in tokens[1:-1]:
            assert not token["special"]
            assert text[token["start"] : token["stop"]] == token["text"]
    plain = (
        await client.post("/tokenize", json={"inputs": "Hello world!", "add_special_tokens": False})
    ).json()
    assert [t["text"] for t in plain[0]] == ["Hello", "world", "!"]
    assert "x-total-time" in response.headers
    decoded = await client.post("/decode", json={"ids": [t["id"] for t in response.json()[0]]})
    assert decoded.json() == ["hello world!"]
    both = await client.post("/decode", json={"ids": [[7592], [2088]], "skip_special_tokens": False})
    assert both.json() == ["hello", "world"]
    assert (await client.post("/decode", json={"ids": []})).status_code == 400
    assert (await client.post("/decode", json={"ids": [-1]})).status_code == 422
    assert (await client.post("/tokenize", json={"inputs": "x", "model": "nope"})).status_code == 404


async def test_root_answers_as_the_first_models_route(client: httpx.AsyncClient) -> None:
    embedded = (await client.post("/embed", json={"inputs": SOURCE})).json()
    for path in ("/", "/invocations"):
        response = await client.post(path, json={"inputs": SOURCE, "normalize": True})
        assert response.status_code == 200, response.text
        assert response.json() == embedded
        similar = await client.post(
            path, json={"inputs": {"source_sentence": SOURCE, "sentences": SENTENCES}}
        )
        assert len(similar.json()) == 3
        bad = await client.post(path, content=b"{not json")
        assert (bad.status_code, bad.json()["error_type"]) == (422, "validation")
        wrong = await client.post(path, json={"inputs": 5})
        assert wrong.status_code == 422


async def test_root_of_a_classifier_is_predict(
    make_settings: Callable[..., Settings], tiny_classifier: Path, tiny_reranker: Path
) -> None:
    models = [{"name": "c", "source": str(tiny_classifier)}, {"name": "r", "source": str(tiny_reranker)}]
    async for client in started_client(create_app(make_settings(models=models))):
        assert (await client.post("/", json={"inputs": "good"})).json() == (
            await client.post("/predict", json={"inputs": "good"})
        ).json()
    models.reverse()
    async for client in started_client(create_app(make_settings(models=models))):
        ranked = (await client.post("/", json={"query": "q", "texts": ["a", "b"]})).json()
        assert sorted(r["index"] for r in ranked) == [0, 1]


@pytest.fixture
def prompted_embedder(tiny_embedder: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "prompted"
    shutil.copytree(tiny_embedder, folder)
    config = {"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
async def pclient(
    make_settings: Callable[..., Settings], prompted_embedder: Path
) -> AsyncIterator[httpx.AsyncClient]:
    spec = {
        "name": "p",
        "source": str(prompted_embedder),
        "prompts": {"short": "q: "},
        "long_inputs": "chunk",
    }
    async for client in started_client(create_app(make_settings(models=[spec]))):
        yield client


async def test_prompts(pclient: httpx.AsyncClient, prompted_embedder: Path) -> None:
    named = await pclient.post("/embed", json={"inputs": ["hello"], "prompt_name": "query"})
    np.testing.assert_allclose(
        named.json(), reference_embeddings(prompted_embedder, ["query: hello"]), atol=1e-5
    )
    given = (await pclient.post("/embed", json={"inputs": ["hello"], "prompt": "q: "})).json()
    from_spec = (await pclient.post("/embed", json={"inputs": ["hello"], "prompt_name": "short"})).json()
    assert given == from_spec
    usage = await pclient.post(
        "/v1/embeddings", json={"input": "hello", "model": "p", "prompt_name": "query"}
    )
    assert usage.json()["usage"]["prompt_tokens"] == 1 + 3 + 1  # [CLS] query : hello [SEP] is 5
    tokens = (await pclient.post("/tokenize", json={"inputs": "hello", "prompt_name": "passage"})).json()
    assert [t["text"] for t in tokens[0]] == ["[CLS]", "passage", ":", "hello", "[SEP]"]
    similar = {"inputs": {"source_sentence": "a", "sentences": ["a"]}, "parameters": {"prompt_name": "query"}}
    assert (await pclient.post("/similarity", json=similar)).json() == [pytest.approx(1.0, abs=1e-5)]
    unknown = await pclient.post("/embed", json={"inputs": "x", "prompt_name": "nope"})
    assert unknown.status_code == 422
    assert "passage, query, short" in unknown.json()["error"]


async def test_default_prompt_name_from_the_spec(
    make_settings: Callable[..., Settings], prompted_embedder: Path
) -> None:
    spec = {"name": "p", "source": str(prompted_embedder), "default_prompt_name": "query"}
    async for client in started_client(create_app(make_settings(models=[spec]))):
        default = (await client.post("/embed", json={"inputs": "hello"})).json()
        explicit = (await client.post("/embed", json={"inputs": "hello", "prompt": "query: "})).json()
        assert default == explicit
    bad = {"name": "p", "source": str(prompted_embedder), "default_prompt_name": "missing"}
    with pytest.raises(ModelLoadError, match="default_prompt_name 'missing'"):  # at start-up, fast
        async for _ in started_client(create_app(make_settings(models=[bad]))):
            pass


async def test_long_inputs_chunk_error_truncate(pclient: httpx.AsyncClient, prompted_embedder: Path) -> None:
    long_text = " ".join(f"word{i % 50}" for i in range(150))  # far over the tiny model's 64 tokens
    chunked = await pclient.post("/embed", json={"inputs": [long_text, "short"]})  # the model's default
    assert chunked.status_code == 200, chunked.text
    tokenizer = TextTokenizer.from_folder(prompted_embedder, 64)
    items, _owners = tokenizer.windows([long_text], 32)
    assert int(chunked.headers["x-chunks"]) == len(items) + 1 > 3
    windows = [tokenizer._full.decode(item.ids, skip_special_tokens=True) for item in items]
    rows = reference_embeddings(prompted_embedder, windows, normalize=False)
    weights = np.array([item.tokens for item in items], dtype=np.float64)
    expected = (rows * weights[:, None]).sum(axis=0) / weights.sum()
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(chunked.json()[0], expected, atol=1e-4)
    openai = await pclient.post("/v1/embeddings", json={"input": long_text, "model": "p"})
    assert openai.json()["usage"]["prompt_tokens"] == sum(item.tokens for item in items)
    error = await pclient.post("/embed", json={"inputs": long_text, "long_inputs": "error"})
    assert error.status_code == 422
    assert error.json()["error_type"] == "input_too_long"
    assert (await pclient.post("/embed", json={"inputs": long_text, "truncate": False})).status_code == 422
    cut = await pclient.post("/embed", json={"inputs": long_text, "long_inputs": "truncate"})
    assert "x-chunks" not in cut.headers
    assert cut.json() != chunked.json()[:1]
