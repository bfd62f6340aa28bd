"""One error hierarchy for the whole platform.

Every error knows its HTTP status and its OpenAI error ``type``, so the server renders any of
them in OpenAI's error shape and the remote adapter turns an upstream error response back into
the same class. Engines raise these; nothing else needs to know about HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Collection

__all__ = [
    "AIPlatformError",
    "AuthenticationError",
    "BadGatewayError",
    "ClientDisconnectedError",
    "ConflictError",
    "EngineOverloadedError",
    "EngineUnavailableError",
    "InternalError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "UnprocessableEntityError",
    "UpstreamTimeoutError",
    "check_model",
    "error_for_status",
    "model_not_found",
    "status_for_type",
    "type_for_status",
]


class AIPlatformError(Exception):
    """Base class: an error with an HTTP status and an OpenAI error type."""

    status_code: int = 500
    error_type: str = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        if status_code is not None:
            self.status_code = status_code
        #: When a retry may succeed; sent as the ``Retry-After`` header (whole seconds).
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers that go with the error response."""
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class InvalidRequestError(AIPlatformError):
    """The request is malformed or asks for something impossible (400)."""

    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(AIPlatformError):
    status_code = 401
    error_type = "authentication_error"

    @property
    def headers(self) -> dict[str, str]:
        return {**super().headers, "WWW-Authenticate": 'Bearer realm="aiplatform"'}


class PermissionDeniedError(AIPlatformError):
    status_code = 403
    error_type = "permission_error"


class NotFoundError(AIPlatformError):
    """An unknown model, route or resource (404)."""

    status_code = 404
    error_type = "invalid_request_error"


def check_model(requested: str | None, served: Collection[str]) -> None:
    """Refuse a request naming a model this engine does not serve (None: the default)."""
    if requested is not None and requested not in served:
        raise model_not_found(requested, served)


def model_not_found(requested: str | None, served: Collection[str]) -> NotFoundError:
    return NotFoundError(
        f"The model '{requested}' does not exist; this server serves: {', '.join(served)}.",
        param="model",
        code="model_not_found",
    )


class RequestTimeoutError(AIPlatformError):
    """The request's body did not arrive within the server's deadline (408)."""

    status_code = 408
    error_type = "invalid_request_error"


class ConflictError(AIPlatformError):
    status_code = 409
    error_type = "invalid_request_error"


class RequestTooLargeError(AIPlatformError):
    status_code = 413
    error_type = "invalid_request_error"


class UnprocessableEntityError(AIPlatformError):
    status_code = 422
    error_type = "invalid_request_error"


class RateLimitError(AIPlatformError):
    status_code = 429
    error_type = "rate_limit_error"


class EngineOverloadedError(RateLimitError):
    """An in-process engine refuses work it cannot start in time (429 with ``Retry-After``).

    Code ``engine_overloaded``: its queue is full, refused at once. Code ``queue_timeout``: the
    request waited ``queue_timeout_s`` without starting and was dropped before it ran.
    """

    def __init__(
        self, message: str, *, retry_after_s: float, code: str = "engine_overloaded"
    ) -> None:
        super().__init__(message, code=code, retry_after_s=retry_after_s)


class ClientDisconnectedError(AIPlatformError):
    """The client went away before its answer was ready; the work for it was cancelled. Nobody
    reads the response (499, nginx's "client closed request")."""

    status_code = 499
    error_type = "invalid_request_error"


class InternalError(AIPlatformError):
    status_code = 500
    error_type = "server_error"


class BadGatewayError(InternalError):
    """An upstream answered, but not usably: an error of its own, a malformed or oversized
    response, a redirect (502)."""

    status_code = 502


class ServiceUnavailableError(AIPlatformError):
    """Something the server needs cannot serve now (503): an engine, or the identity
    database."""

    status_code = 503
    error_type = "service_unavailable"


class EngineUnavailableError(ServiceUnavailableError):
    """An engine cannot serve now: a remote that is down or timed out, or a failed load (503)."""


class UpstreamTimeoutError(EngineUnavailableError):
    """An upstream did not answer within the engine's deadline (504)."""

    status_code = 504


_BY_STATUS: dict[int, type[AIPlatformError]] = {
    cls.status_code: cls
    for cls in (
        InvalidRequestError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        RequestTimeoutError,
        RequestTooLargeError,
        UnprocessableEntityError,
        RateLimitError,
        InternalError,
        BadGatewayError,
        EngineUnavailableError,
        UpstreamTimeoutError,
    )
}


#: Each OpenAI error type's status: that of the first class (by status) that has the type.
_STATUS_BY_TYPE = {
    cls.error_type: cls.status_code
    for cls in sorted(_BY_STATUS.values(), key=lambda cls: cls.status_code, reverse=True)
}


def status_for_type(error_type: str | None) -> int:
    """The HTTP status an OpenAI error ``type`` stands for (errors inside a stream carry none)."""
    return _STATUS_BY_TYPE.get(error_type or "", 500)


def type_for_status(status_code: int) -> str:
    """The OpenAI error ``type`` of a status, as the error class that owns it reports it."""
    return error_for_status(status_code, "").error_type


def error_for_status(
    status_code: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
) -> AIPlatformError:
    """Build the error class that owns ``status_code``, keeping the status when none does."""
    cls = _BY_STATUS.get(status_code)
    if cls is None:
        cls = InvalidRequestError if 400 <= status_code < 500 else InternalError
    return cls(message, param=param, code=code, status_code=status_code)
