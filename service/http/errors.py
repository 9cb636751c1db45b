"""The one table that maps domain errors to HTTP status codes, and the handlers that use it.

Two error shapes: ``{"error", "error_type"}`` everywhere (TEI's), and OpenAI's nested
``{"error": {"message", "type", "param", "code"}}`` under ``/v1/``. A 500 never carries internals: the
exception is logged and the client gets a fixed message.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.runtime.errors import DeviceOutOfMemoryError, InputTooLongError, ModelError
from service.errors import (
    ClientDisconnectedError,
    DeadlineExceededError,
    EmptyInputError,
    InferenceError,
    InvalidInputError,
    ModelNotFoundError,
    NotReadyError,
    OverloadedError,
    PayloadTooLargeError,
    ServiceError,
    WrongTaskError,
)

logger = logging.getLogger(__name__)

#: Domain error -> (HTTP status, error_type). Looked up along the exception's MRO.
ERROR_TABLE: dict[type[Exception], tuple[int, str]] = {
    EmptyInputError: (400, "empty"),
    WrongTaskError: (400, "wrong_task"),
    ModelNotFoundError: (404, "model_not_found"),
    PayloadTooLargeError: (413, "payload_too_large"),
    InvalidInputError: (422, "validation"),
    InputTooLongError: (422, "input_too_long"),
    NotReadyError: (503, "not_ready"),
    DeviceOutOfMemoryError: (503, "out_of_memory"),
    OverloadedError: (429, "overloaded"),
    DeadlineExceededError: (504, "timeout"),
    InferenceError: (500, "backend"),
    ClientDisconnectedError: (499, "client_closed"),
}
#: HTTP status -> OpenAI error ``type`` under ``/v1/``, for handlers and middleware alike. OpenAI answers a
#: bad API key with ``invalid_request_error`` too; a status not listed is ``server_error`` from 500 up.
OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    499: "invalid_request_error",
    500: "server_error",
    503: "service_unavailable",
    504: "server_error",
}
_INTERNAL = "internal error; see the server log"
#: The rejections metric's reason for errors that carry none of their own.
_REJECTION_REASONS: dict[type[Exception], str] = {
    DeadlineExceededError: "deadline",
    DeviceOutOfMemoryError: "out_of_memory",
}


def openai_shaped(path: str) -> bool:
    """Whether errors on ``path`` take OpenAI's shape: under /v1/, but for /v1/rerank (Cohere and Jina
    clients read the plain shape's message)."""
    return path.startswith("/v1/") and path != "/v1/rerank"


def status_for(exc: Exception) -> tuple[int, str]:
    """HTTP status and error_type for a domain error (500 / internal for anything unknown)."""
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return 500, "internal"


def error_body(path: str, status: int, error_type: str, message: str) -> dict[str, object]:
    """The error body in the shape the route's clients expect (OpenAI's under ``/v1/``)."""
    if not openai_shaped(path):
        return {"error": message, "error_type": error_type}
    fallback = "server_error" if status >= 500 else "invalid_request_error"
    openai_type = OPENAI_ERROR_TYPES.get(status, fallback)
    return {"error": {"message": message, "type": openai_type, "param": None, "code": error_type}}


def error_response(
    request: Request,
    status: int,
    error_type: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The error response for ``request``'s route (see :func:`error_body`)."""
    body = error_body(request.url.path, status, error_type, message)
    return JSONResponse(body, status_code=status, headers=headers)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    status, error_type = status_for(exc)
    # Mapped domain errors carry messages written for clients; anything unmapped may hold internals.
    message = _INTERNAL if error_type == "internal" else str(exc)
    headers = None
    if isinstance(exc, OverloadedError | DeadlineExceededError | DeviceOutOfMemoryError):
        reason = _REJECTION_REASONS.get(type(exc)) or getattr(exc, "reason", "overloaded")
        model = getattr(request.state, "model", "")
        request.app.state.metrics.rejections.labels(model, reason).inc()
    if isinstance(exc, OverloadedError):
        headers = {"Retry-After": str(exc.retry_after_s)}
    elif isinstance(exc, DeviceOutOfMemoryError):
        headers = {"Retry-After": "1"}  # the next batch usually fits: retrying is the right move
    return error_response(request, status, error_type, message, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Field paths and messages only: pydantic's "input" would echo client texts back.
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return error_response(request, 422, "validation", "; ".join(parts) or "invalid request")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
        # FastAPI's body parsing: a body that is not UTF-8 (or not JSON) is a validation error, like
        # malformed JSON; the decoder's message would quote the client's bytes, so a fixed one.
        return error_response(request, 422, "validation", "body: not valid JSON in UTF-8")
    error_type = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
    return error_response(
        request, exc.status_code, error_type, str(exc.detail), headers=getattr(exc, "headers", None)
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s", request.url.path, exc_info=exc)
    return error_response(request, 500, "internal", _INTERNAL)


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(ServiceError, _domain_error)
    app.add_exception_handler(ModelError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
