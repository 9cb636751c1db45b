"""Floors of the serving path on this machine: what a server costs per request doing next to nothing.

Served by ``benchmarks.serving_cost`` with uvicorn (httptools, uvloop, no access log), one STS-B sentence
per request as for bertserve, each answered with 384 floats (one MiniLM embedding's size):

- ``fastapi_app``: one FastAPI route with a strict pydantic body and an orjson response;
- ``asgi_app``: a bare ASGI callable that parses the body with orjson;
- ``model_app``: the same callable that embeds the texts itself, in the handler on the event loop's
  thread (tokenize, pad, all-MiniLM-L6-v2 float32 on ONNX Runtime on every thread, normalise): the
  cheapest server of a real embedding, the floor of a served request's latency at concurrency 1;
- ``model_app_int8``: the same with ONNX Runtime's int8 of the model (``quantize=int8``), the floor of
  the int8 variant's.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Response
from pydantic import BaseModel, ConfigDict

from models.runtime.builtins import default_home, minilm_path
from models.runtime.contract import EncoderBackend
from models.runtime.factory import create_backend
from models.runtime.folders import describe_model
from models.runtime.postprocess import finish_embeddings
from models.runtime.tokenization import TextTokenizer

ROW = np.linspace(-1, 1, 384, dtype=np.float32).reshape(1, 384)
_HEADERS = [(b"content-type", b"application/json")]


class Body(BaseModel):
    """The /embed body, strict as bertserve's."""

    model_config = ConfigDict(strict=True)

    inputs: str | list[str]


fastapi_app = FastAPI()


@fastapi_app.get("/ready")
async def ready() -> dict[str, str]:
    """Readiness for the benchmark's start-up poll."""
    return {"status": "ok"}


@fastapi_app.post("/embed")
async def embed(body: Body) -> Response:
    """384 floats per input."""
    texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    rows = np.repeat(ROW, len(texts), axis=0)
    return Response(orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Any request: read the body, parse it, answer 384 floats per input."""
    if scope["type"] != "http":
        return
    texts = await _texts(receive, "")
    await _answer(send, np.repeat(ROW, len(texts), axis=0))


async def _texts(receive: Any, empty: str) -> list[str]:
    """The request body's ``inputs`` as a list (``[empty]`` for a bodiless request: the ready poll)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    texts = orjson.loads(body)["inputs"] if body else [empty]
    return [texts] if isinstance(texts, str) else texts


async def _answer(send: Any, rows: np.ndarray) -> None:
    """A 200 JSON answer of ``rows``."""
    payload = orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": payload})


class ModelApp:
    """A bare ASGI callable that embeds each request's texts in its handler (see the module docstring):
    the model (``quantize``: "none" or "int8") loads at lifespan start-up."""

    def __init__(self, quantize: str = "none") -> None:
        self.quantize = quantize
        self.model: tuple[TextTokenizer, EncoderBackend] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                self.model = self.model or load_model(self.quantize)
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        texts = await _texts(receive, "ready")
        assert self.model is not None
        tokenizer, backend = self.model
        rows = backend.forward(tokenizer.collate(tokenizer.encode(texts, truncate=True)))
        await _answer(send, finish_embeddings(rows, True, None))


def load_model(quantize: str = "none") -> tuple[TextTokenizer, EncoderBackend]:
    """The MiniLM graph bertserve serves (float32, or ``quantize="int8"``), on every thread (one stream),
    and its tokenizer."""
    description = describe_model(minilm_path())
    tokenizer = TextTokenizer.from_folder(minilm_path(), description.max_input_tokens)
    home = default_home() / "onnx"
    backend, _ = create_backend(description, "onnx", "cpu", "float32", quantize, home, os.cpu_count() or 1)
    return tokenizer, backend


model_app = ModelApp()
model_app_int8 = ModelApp("int8")
