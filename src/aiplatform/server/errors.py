"""Exception handlers: every error leaves the server in OpenAI's error shape."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.types import ExceptionHandlersMap

from aiplatform.api.openai import ErrorBody, ErrorResponse
from aiplatform.errors import AIPlatformError, type_for_status

__all__ = ["EXCEPTION_HANDLERS", "error_body", "error_response"]

logger = logging.getLogger(__name__)


def error_body(exc: AIPlatformError) -> ErrorResponse:
    return ErrorResponse(
        error=ErrorBody(message=exc.message, type=exc.error_type, param=exc.param, code=exc.code)
    )


def error_response(
    status_code: int,
    message: str,
    *,
    error_type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    if error_type is None:
        error_type = type_for_status(status_code)
    body = ErrorResponse(error=ErrorBody(message=message, type=error_type, param=param, code=code))
    return Response(
        content=msgspec.json.encode(body),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def _platform_error(_: Request[Any, Any, Any], exc: AIPlatformError) -> Response[bytes]:
    if exc.status_code >= 500:
        logger.warning("%s: %s", type(exc).__name__, exc.message)
    return error_response(
        exc.status_code,
        exc.message,
        error_type=exc.error_type,
        param=exc.param,
        code=exc.code,
        headers=exc.headers or None,
    )


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        return _validation_error(exc)
    if isinstance(exc.__cause__, SerializationException):
        return error_response(400, f"The request body is not valid JSON: {exc.detail}")
    if status == 404:
        message = f"Unknown path: {request.method} {request.url.path}"
    elif status == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    elif status == 413:
        limit = request.route_handler.resolve_request_max_body_size()
        message = f"The request body is larger than the server's limit of {limit} bytes."
    else:
        message = exc.detail
    return error_response(status, message, headers=exc.headers)


def _validation_error(exc: ValidationException) -> Response[bytes]:
    problems = exc.extra if isinstance(exc.extra, list) else []
    if not problems:
        return error_response(400, f"The request body is not valid JSON: {exc.detail}")
    first = problems[0] if isinstance(problems[0], dict) else {}
    key = first.get("key")
    detail = first.get("message", exc.detail)
    if not key or key == "data":  # the body itself, not one of its fields
        if str(detail).strip("'") == "data":
            return error_response(400, "The request body is empty; send a JSON object.")
        return error_response(400, f"Invalid request body: {detail}")
    return error_response(400, f"Invalid value for '{key}': {detail}", param=str(key))


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "The server hit an internal error; it has been logged.")


def _too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[bytes]:
    """Input nested deeper than a decoder or validator can follow (a JSON body ~1000 levels
    deep, wherever it is read) is the request's fault: a 400, never a 500. The traceback is
    logged, so a recursion of the server's own still shows."""
    logger.warning("recursion too deep on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        400, "The request is nested too deeply to be read; flatten it.", code="nested_too_deeply"
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    AIPlatformError: _platform_error,
    HTTPException: _http_exception,
    RecursionError: _too_deep,
    Exception: _unexpected,
}
