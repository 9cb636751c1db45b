"""Floors of the serving path on this machine: what a server costs per request doing next to nothing.

Served by ``benchmarks.serving_cost`` with uvicorn (httptools, uvloop, no access log), one STS-B sentence
per request as for bertserve, each answered with 384 floats (one MiniLM embedding's size):

- ``fastapi_app``: one FastAPI route with a strict pydantic body and an orjson response;
- ``asgi_app``: a bare ASGI callable that parses the body with orjson.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Response
from pydantic import BaseModel, ConfigDict

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
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    texts = orjson.loads(body)["inputs"] if body else [""]
    rows = np.repeat(ROW, 1 if isinstance(texts, str) else len(texts), axis=0)
    payload = orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": payload})
