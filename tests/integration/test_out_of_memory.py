"""Out of device memory on a batch: its requests get 503 with Retry-After, the server keeps serving."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from service.app import create_app
from service.settings import Settings
from tests.integration.conftest import started_client

pytestmark = pytest.mark.integration


def _fail_batches_over(app: object, rows: int) -> None:
    """Make the served PyTorch model raise PyTorch's out-of-memory error on batches of more than
    ``rows`` inputs, as a device with little memory left does."""

    def hook(module: torch.nn.Module, args: tuple[object, ...], kwargs: dict[str, torch.Tensor]) -> None:
        if kwargs["input_ids"].shape[0] > rows:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    for loaded in app.state.registry.models:  # type: ignore[attr-defined]
        loaded.engine.backend.model.register_forward_pre_hook(hook, with_kwargs=True)


async def test_out_of_memory_answers_503_and_the_next_request_is_served(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(runtime="torch", cache="none"))
    async for client in started_client(app):
        engine = app.state.registry.models[0].engine
        assert (engine.queue.limits.batch_tokens, engine.queue.limits.batch_items) == (512, 64)
        _fail_batches_over(app, 2)
        texts = ["one", "two", "three", "four"]
        response = await client.post("/embed", json={"inputs": texts})
        assert response.status_code == 503
        assert response.json()["error_type"] == "out_of_memory"
        assert "4 inputs" in response.json()["error"]
        assert response.headers["retry-after"] == "1"
        openai = await client.post("/v1/embeddings", json={"input": texts, "model": "tiny-embed"})
        assert openai.status_code == 503
        assert openai.json()["error"]["code"] == "out_of_memory"
        classify = await client.post("/classify", json={"inputs": texts})
        assert classify.status_code == 503
        assert (await client.post("/embed", json={"inputs": texts[:2]})).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'bertserve_rejections_total{model="tiny-embed",reason="out_of_memory"} 2.0' in metrics
