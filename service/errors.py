"""The service's domain errors. Raised by the engine and the schemas, mapped to HTTP in one table.

These classes know nothing of HTTP; :mod:`service.http.errors` maps them (and the model side's errors)
to status codes.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error the service reports to a client; ``str()`` is safe to show."""


class EmptyInputError(ServiceError):
    """The request holds no input, or an empty string."""


class ModelNotFoundError(ServiceError):
    """The request names a model that is not served."""


class WrongTaskError(ServiceError):
    """The named model does not do what the route asks (e.g. /embed on a classifier)."""


class PayloadTooLargeError(ServiceError):
    """Too many inputs, characters or body bytes."""


class InvalidInputError(ServiceError):
    """The request is well-formed JSON but cannot be served as asked."""


class NotReadyError(ServiceError):
    """Models are still loading (or failed to load)."""


class InferenceError(ServiceError):
    """The model failed on a batch; details are logged, never returned."""


class OverloadedError(ServiceError):
    """The queue is full: the client should retry after a short while (429 with Retry-After)."""

    def __init__(self, message: str, reason: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


class DeadlineExceededError(ServiceError):
    """The request was not served within its deadline (504)."""


class ClientDisconnectedError(ServiceError):
    """The client went away before its answer was ready; nothing is sent."""
