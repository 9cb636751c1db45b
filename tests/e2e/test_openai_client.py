"""The official openai client against /v1/embeddings of a real server."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from openai import NotFoundError, OpenAI

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


def test_openai_client_embeddings(server: Server) -> None:
    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    texts = ["The cat sits on the mat.", "Stock markets fell sharply on Monday."]
    expected = np.array(httpx.post(f"{server.url}/embed", json={"inputs": texts}).json())
    default = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)  # base64 on the wire
    as_float = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts, encoding_format="float")
    for response in (default, as_float):
        got = np.array([item.embedding for item in response.data])
        np.testing.assert_allclose(got, expected, atol=1e-6)
        assert response.usage.prompt_tokens > 10
    short = client.embeddings.create(model="all-MiniLM-L6-v2", input="hello", dimensions=64)
    assert len(short.data[0].embedding) == 64


def test_openai_client_unknown_model(server: Server) -> None:
    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(NotFoundError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert "text-embedding-3-small" in str(caught.value)
