"""Routes built from operation tables: one thin handler per operation, whatever the engine mode.

A handler decodes the operation's request type (litestar does it with msgspec, so the OpenAPI
schema comes from the same types), calls the engine through its protocol, and returns the
response type or, when the request asks for it, an SSE stream of chunk types.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, route
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse

from aiplatform.api.ids import check_id
from aiplatform.api.openai import ErrorBody
from aiplatform.auth.scope import check_operation_access
from aiplatform.engines.base import Engine, Operation
from aiplatform.errors import AIPlatformError, InternalError, InvalidRequestError
from aiplatform.forms import FilePart, FormError, convert_fields, decode_form
from aiplatform.observability.tracing import engine_span, traced_stream
from aiplatform.server.disconnect import unless_disconnected
from aiplatform.server.guard.json_body import check_json_body
from aiplatform.server.openapi import JSON_ONLY, documented_operation, error_response
from aiplatform.server.strict import strict_json
from aiplatform.sse import DONE_EVENT, encode_event

__all__ = ["operation_route"]

logger = logging.getLogger(__name__)

_ERROR_RESPONSES = {
    status: error_response(description)
    for status, description in (
        (400, "Invalid request"),
        (401, "No valid API key or access token (with authentication on)"),
        (403, "Not allowed to this caller (an API key's engine scope, an admin's operation)"),
        (404, "Unknown model or resource"),
        (408, "The request body did not arrive in time"),
        (409, "Conflicts with what exists (a name or id taken)"),
        (413, "Request body too large"),
        (429, "Too many requests: retry later"),
        (502, "A forwarded engine answered badly (too large, malformed, a redirect)"),
        (503, "Engine unavailable (loading, failed, or remote unreachable)"),
        (504, "A forwarded engine did not answer in time"),
    )
}

#: JSON routes refuse other bodies before reading them (see :mod:`aiplatform.server.guard`).
_JSON_ONLY = {415: error_response(JSON_ONLY)}


def operation_route(engine: Engine, op: Operation[Any, Any, Any]) -> HTTPRouteHandler:
    """The route serving ``op`` with ``engine``."""
    if op.body == "query":
        return _query_route(engine, op)
    if op.body == "form":
        return _form_route(engine, op)
    encoder = msgspec.json.Encoder()

    async def handler(data: Any, request: Request[Any, Any, Any]) -> ASGIResponse:
        if logger.isEnabledFor(logging.DEBUG):
            _log_unknown_fields(await request.body(), op)
        if op.path_params:
            ids = {name: check_id(name, value) for name, value in request.path_params.items()}
            data = msgspec.structs.replace(data, **ids)
        return await _answer(engine, op, data, encoder, request)

    # The request type is set at runtime so litestar documents it in OpenAPI; StrictJSON
    # (the route's DTO) decodes it.
    handler.__annotations__ = {
        "data": JSONBody[op.request],  # type: ignore[misc,name-defined]
        "request": Request,
        "return": ASGIResponse,
    }
    route = _mount(handler, engine, op, dto=strict_json(op.request), extra_responses=_JSON_ONLY)
    route.before_request = _json_body_hook(op, _empty_is_valid(op.request))
    return route


def _json_body_hook(
    op: Operation[Any, Any, Any], empty_is_valid: bool
) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """Refuse a body that is not JSON (415) before it is read; then, when ``{}`` is a whole
    request, read an empty body as ``{}``."""
    where = f"{op.method} {op.path}"

    async def before_request(request: Request[Any, Any, Any]) -> None:
        check_json_body(where, request.content_type, request.headers, empty_allowed=empty_is_valid)
        if empty_is_valid:
            await _empty_body_as_empty_object(request)

    return before_request


def _empty_is_valid(request_type: type[Any]) -> bool:
    """Whether ``{}`` is a whole request (every field has a default or comes from the path)."""
    try:
        msgspec.convert({}, request_type)
    except msgspec.ValidationError:
        return False
    return True


async def _empty_body_as_empty_object(request: Request[Any, Any, Any]) -> None:
    """A request that needs no body (``POST /v1/jobs/{id}/cancel``) may come without one, as
    OpenAI's cancel endpoints do: an empty body reads as ``{}``. litestar hands the DTO no
    body at all otherwise, so the cached body is set before the handler's data is read."""
    if not await request.body():
        request._body = request._connection_state.body = b"{}"


def _form_route(engine: Engine, op: Operation[Any, Any, Any]) -> HTTPRouteHandler:
    """Operations with uploads take a multipart form (OpenAI's audio endpoints)."""
    encoder = msgspec.json.Encoder()

    async def handler(request: Request[Any, Any, Any]) -> ASGIResponse:
        content_type, _ = request.content_type
        if content_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
            raise InvalidRequestError(
                f"{op.path} takes multipart/form-data, not {content_type or 'an empty body'}."
            )
        try:
            form = await request.form()
        except HTTPException as exc:
            if exc.status_code != 400:
                raise
            raise FormError(f"The {content_type} body cannot be read: {exc.detail}") from exc
        items: list[tuple[str, str | FilePart]] = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                part = FilePart(
                    filename=value.filename or "upload",
                    content_type=value.content_type or "application/octet-stream",
                    data=await value.read(),
                )
                items.append((name, part))
            else:
                items.append((name, str(value)))
        items.extend(request.path_params.items())
        return await _answer(engine, op, decode_form(items, op.request), encoder, request)

    handler.__annotations__ = {"request": Request, "return": ASGIResponse}
    return _mount(handler, engine, op)


def _query_route(engine: Engine, op: Operation[Any, Any, Any]) -> HTTPRouteHandler:
    """Operations without a body take their request from the query string and the path."""
    encoder = msgspec.json.Encoder()

    async def handler(request: Request[Any, Any, Any]) -> ASGIResponse:
        params = {**dict(request.query_params.items()), **request.path_params}
        data = convert_fields(params, op.request, "query parameters")
        return await _answer(engine, op, data, encoder, request)

    handler.__annotations__ = {"request": Request, "return": ASGIResponse}
    return _mount(handler, engine, op)


async def _answer(
    engine: Engine,
    op: Operation[Any, Any, Any],
    data: Any,
    encoder: msgspec.json.Encoder,
    request: Request[Any, Any, Any],
) -> ASGIResponse:
    """Call the engine: one response (rendered as the request asked), or an SSE stream.

    The call is cancelled if the client disconnects before its answer (or a stream's first
    chunk) is ready. Responses are built as litestar's low-level ASGI responses (the route's
    return annotation says so), which skips the per-request conversion of a ``Response``: this
    is the path every forwarded call takes twice, on the gateway and on the pod."""
    check_operation_access(engine.kind.name, admin_only=op.admin_only)
    if op.wants_stream(data):
        stream = traced_stream(engine.kind.name, op.name, data, engine.stream(op, data))
        return await unless_disconnected(request.receive, lambda: _stream_response(stream, encoder))
    with engine_span(engine.kind.name, op.name, data):
        result = await unless_disconnected(request.receive, lambda: engine.invoke(op, data))
    rendered = op.render(data, result) if op.render is not None else None
    if rendered is not None:
        body, media_type = rendered
        return ASGIResponse(body=body, media_type=media_type)
    return ASGIResponse(
        body=encoder.encode(result), media_type="application/json", status_code=op.status_code
    )


def _mount(
    handler: Any,
    engine: Engine,
    op: Operation[Any, Any, Any],
    dto: Any = None,
    extra_responses: dict[int, ResponseSpec] | None = None,
) -> HTTPRouteHandler:
    handler.__name__ = handler.__qualname__ = f"{engine.kind.name}_{op.name}"
    return route(
        op.path_with(lambda name: f"{{{name}:str}}"),  # litestar's spelling
        http_method=op.method,
        name=f"{engine.kind.name}.{op.name}",
        summary=op.summary or None,
        tags=list(op.tags) or [engine.kind.name],
        operation_id=f"{engine.kind.name}_{op.name}",
        status_code=op.status_code,
        dto=dto,
        return_dto=None,
        operation_class=documented_operation(op),
        responses={
            op.status_code: ResponseSpec(
                data_container=op.response,
                # examples come from the operation's own (documented_operation); generated ones
                # are random, which would make the committed description change run to run
                generate_examples=False,
                description=(
                    f"{op.response.__name__}, or an SSE stream of {op.chunk.__name__} when "
                    f"'{op.stream_field}' is true"
                    if op.chunk is not None
                    else op.response.__name__
                ),
            ),
            **_ERROR_RESPONSES,
            **(extra_responses or {}),
        },
    )(handler)


async def _stream_response(
    chunks: AsyncIterator[msgspec.Struct], encoder: msgspec.json.Encoder
) -> ASGIStreamingResponse:
    """An SSE response. The first chunk is awaited here, so an error before any output is a
    plain HTTP error with its own status; later errors become an ``error`` event."""
    iterator = aiter(chunks)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        first = None

    async def events() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield encode_event(encoder.encode(first))
                async for chunk in iterator:
                    yield encode_event(encoder.encode(chunk))
        except AIPlatformError as exc:
            yield encode_event(encoder.encode(_streamed_error(exc)))
        except Exception:
            logger.exception("stream failed")
            failure = InternalError("The stream failed with an internal error; it has been logged.")
            yield encode_event(encoder.encode(_streamed_error(failure)))
        yield DONE_EVENT

    return ASGIStreamingResponse(
        iterator=events(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


class _StreamedErrorBody(ErrorBody, kw_only=True):
    """OpenAI's error fields, and the HTTP status the error would have had before the stream
    began (an event has no status line; the remote adapter restores the status from it)."""

    http_status: int


class _StreamedError(msgspec.Struct, kw_only=True):
    error: _StreamedErrorBody


def _streamed_error(exc: AIPlatformError) -> _StreamedError:
    return _StreamedError(
        error=_StreamedErrorBody(
            message=exc.message,
            type=exc.error_type,
            param=exc.param,
            code=exc.code,
            http_status=exc.status_code,
        )
    )


def _log_unknown_fields(body: bytes, op: Operation[Any, Any, Any]) -> None:
    try:
        fields = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    except msgspec.MsgspecError:
        return
    known = set(getattr(op.request, "__struct_encode_fields__", ()))
    unknown = sorted(set(fields) - known)
    if unknown:
        logger.debug("%s %s: ignoring unknown fields %s", op.method, op.path, ", ".join(unknown))
