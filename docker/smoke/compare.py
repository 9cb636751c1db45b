"""Smoke step: the image answers as the host does. Sends the same texts to the container and to the host's
own bertserve (in process, default models from the host's data directory) and compares: embeddings
row by row (cosine), and the top label of each classification.

    python docker/smoke/compare.py http://127.0.0.1:18080
"""

from __future__ import annotations

import asyncio
import sys

import httpx
import numpy as np

from service.app import create_app
from service.settings import Settings

TEXTS = [
    "A gorgeous, moving film.",
    "Dull, predictable and far too long.",
    "The serving image carries no training stack.",
    "Embeddings should not depend on where the model runs.",
]
MIN_COSINE = 0.9999


async def answers(client: httpx.AsyncClient) -> tuple[np.ndarray, list[str]]:
    """Embeddings and top labels of TEXTS from one server."""
    embedded = await client.post("/embed", json={"inputs": TEXTS}, timeout=60)
    classified = await client.post("/classify", json={"inputs": TEXTS}, timeout=60)
    embedded.raise_for_status()
    classified.raise_for_status()
    return np.array(embedded.json()), [ranked[0]["label"] for ranked in classified.json()]


async def host_answers() -> tuple[np.ndarray, list[str]]:
    """The host's answers: the app on its default models, through its lifespan."""
    app = create_app(Settings(cache="none"))
    async with app.router.lifespan_context(app):
        registry = app.state.registry
        while not registry.ready:
            if registry.failure:
                raise SystemExit(f"host models failed to load: {registry.failure}")
            await asyncio.sleep(0.1)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
            return await answers(client)


async def main(url: str) -> int:
    """Compare; print one line; non-zero on a difference."""
    async with httpx.AsyncClient(base_url=url) as client:
        image_vectors, image_labels = await answers(client)
    host_vectors, host_labels = await host_answers()
    cosines = np.sum(image_vectors * host_vectors, axis=1) / (
        np.linalg.norm(image_vectors, axis=1) * np.linalg.norm(host_vectors, axis=1)
    )
    print(f"min cosine image/host {cosines.min():.6f}; labels image {image_labels} host {host_labels}")
    return 0 if cosines.min() >= MIN_COSINE and image_labels == host_labels else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1])))
