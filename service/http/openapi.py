"""OpenAPI documentation of the error responses, and of the API-key scheme when keys are set.

Every status a route can answer is declared with its body model, so that a client generated from
``/openapi.json`` (and the schema-driven fuzz tests) see the real error responses.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from service.http.schemas import ErrorResponse, OpenAIErrorResponse

_INFERENCE_ERRORS = {
    400: "Empty input, or a model of the wrong task",
    401: "Missing or invalid API key (when keys are configured)",
    404: "Unknown model",
    413: "Body, input count or characters over the limits",
    422: "Invalid request, or an input over the token limit with truncate false",
    429: "Queue full or API key over its rate; retry after the Retry-After header's seconds",
    500: "The model failed on the batch (no internals are returned)",
    503: "Models still loading",
    504: "Not served within the request deadline",
}


def _responses(model: type[BaseModel], statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": model, "description": text} for status, text in statuses.items()}


#: Error responses of the TEI-style inference routes.
ERROR_RESPONSES = _responses(ErrorResponse, _INFERENCE_ERRORS)
#: Error responses of /v1/embeddings, in OpenAI's shape.
OPENAI_ERROR_RESPONSES = _responses(OpenAIErrorResponse, _INFERENCE_ERRORS)
#: Error responses of the GET routes: the key check and the key's rate limit.
META_RESPONSES = _responses(
    ErrorResponse, {401: _INFERENCE_ERRORS[401], 429: "API key over its rate; see Retry-After"}
)


def install_openapi(app: FastAPI, keys_required: bool, open_paths: list[str]) -> None:
    """Declare the bearer-key scheme on every route but the open ones, when keys are configured."""
    if not keys_required:
        return

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "apiKey": {"type": "http", "scheme": "bearer"}
            }
            for path, operations in schema["paths"].items():
                for operation in operations.values():
                    operation["security"] = [] if path in open_paths else [{"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
