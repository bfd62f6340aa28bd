"""The remote adapter: any engine kind, forwarded over HTTP by one generic class.

It encodes the operation's request type, calls the operation's path on the configured URL,
decodes the response type (or the SSE stream of chunk types) and turns upstream error responses
back into the platform's own errors. Because the paths are OpenAI's, the same class forwards to
our own pod (``aiplatform serve --engines NAME``) and to any OpenAI-compatible server.

An upstream that cannot be reached is a 503, and one that does not answer within the deadline a
504; the connection pool reconnects on the next call, so an upstream that comes back is used
again at once, once its circuit breaker (:mod:`aiplatform.remote.breaker`) has seen it ready:
after a failure in transport, calls fail at once with 503 until a background probe finds the
upstream ready. An upstream that answers unusably (a 5xx of its own other than 503/504, a body
past ``max_response_bytes`` or malformed, a redirect, the wrong number of items) is a 502. The
HTTP layer itself is :mod:`aiplatform.remote.wire`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, Self, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import anyio
import msgspec

from aiplatform import __version__
from aiplatform.api.health import EngineStatus
from aiplatform.api.ids import check_id, path_segment
from aiplatform.api.openai import ModelCard, ModelList
from aiplatform.engines.base import EngineKind, EngineMode, Operation
from aiplatform.engines.settings import EngineSettings
from aiplatform.errors import (
    AIPlatformError,
    BadGatewayError,
    EngineUnavailableError,
    InternalError,
    UpstreamTimeoutError,
    error_for_status,
    status_for_type,
)
from aiplatform.forms import encode_form
from aiplatform.observability.metrics_engines import remote_call, remote_stream
from aiplatform.observability.tracing import propagate
from aiplatform.remote.breaker import CircuitBreaker, ProbeResult
from aiplatform.remote.wire import AiohttpWire, Wire, WireError, WireOptions, WireResponse
from aiplatform.sse import DONE, iter_data
from aiplatform.tenant import SERVICE_TOKEN_HEADER, TENANT_HEADER, current_tenant

__all__ = ["RemoteEngine"]

logger = logging.getLogger(__name__)

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)
Chunk = TypeVar("Chunk", bound=msgspec.Struct)

_JSON = {"content-type": "application/json"}
_MODELS_PATH = "/v1/models"


class RemoteEngine:
    """An :class:`~aiplatform.engines.base.Engine` whose calls go to ``settings.url``.

    ``wire`` carries the bytes: :class:`~aiplatform.remote.wire.AiohttpWire` (the network) unless
    given; ``HttpxWire(httpx.ASGITransport(app))`` calls an app in the same process. A wire
    belongs to one engine, which opens it on entry and closes it on exit.
    """

    def __init__(
        self,
        kind: EngineKind[Any],
        settings: EngineSettings,
        *,
        wire: Wire | None = None,
        name: str | None = None,
        service_token: str | None = None,
    ) -> None:
        if not settings.url:
            raise ValueError(f"engine {kind.name!r} has no url to forward to")
        self._kind = kind
        #: How errors and logs name it: the kind, or e.g. ``analytics/titan`` for one forwarded
        #: analytic engine.
        self._name = name or kind.name
        self._settings = settings
        self._base_url = _base_url(settings.url)
        self._wire: Wire = wire if wire is not None else AiohttpWire()
        self._open = False
        self._encoder = msgspec.json.Encoder()
        self._stack: AsyncExitStack | None = None
        #: Presented to our own pods, which then take the tenant this server names; never to an
        #: upstream called with an API key of its own (a third party, or a server the key
        #: alone admits), which must not get a credential that acts as any tenant.
        self._service_token = service_token if not settings.api_key else None
        self._breaker = (
            CircuitBreaker(
                self._name, self._base_url, self._probe, interval_s=settings.probe_interval_s
            )
            if settings.circuit_breaker
            else None
        )

    @property
    def kind(self) -> EngineKind[Any]:
        return self._kind

    @property
    def mode(self) -> EngineMode:
        return "remote"

    @property
    def url(self) -> str:
        return self._base_url

    def _name_tenant(self, headers: dict[str, str]) -> None:
        """Name the tenant the call acts for: to a pod, as its gateway (with the service
        credential, or on a development set-up without authentication). Calling with an API
        key of its own, the upstream takes the tenant from that key, and a tenant header
        without the service credential would only be refused."""
        if not self._settings.api_key:
            headers[TENANT_HEADER] = current_tenant()

    async def __aenter__(self) -> Self:
        settings = self._settings
        headers = {"user-agent": f"aiplatform/{__version__}"}
        if settings.api_key:
            headers["authorization"] = f"Bearer {settings.api_key}"
        if self._service_token:
            headers[SERVICE_TOKEN_HEADER] = self._service_token
        await self._wire.open(
            WireOptions(
                base_url=self._base_url,
                headers=headers,
                max_connections=settings.max_connections,
                connect_timeout_s=settings.connect_timeout_s,
                read_timeout_s=settings.timeout_s,
                max_response_bytes=settings.max_response_bytes,
                max_event_bytes=settings.max_event_bytes,
            )
        )
        self._open = True
        if self._breaker is not None:
            stack = AsyncExitStack()
            task_group = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(task_group.cancel_scope.cancel)
            self._breaker.start(task_group)
            self._stack = stack
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._breaker is not None:
            self._breaker.stop()
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()
        if self._open:
            self._open = False
            await self._wire.aclose()

    async def invoke(self, op: Operation[Req, Resp, Any], request: Req) -> Resp:
        with remote_call(self._name, op.name):  # timed, and counted when it fails
            return await self._invoke(op, request)

    def stream(self, op: Operation[Req, Any, Chunk], request: Req) -> AsyncIterator[Chunk]:
        return remote_stream(self._name, op.name, self._stream(op, request))

    async def _invoke(self, op: Operation[Req, Resp, Any], request: Req) -> Resp:
        path, body, headers = self._encode(op, request)
        response = await self._send(op.method, path, body, headers=headers)
        if response.status >= 400:
            raise _error(response.status, response.content, response.reason, response.retry_after)
        try:
            result = msgspec.json.decode(response.content, type=op.response)
        except msgspec.MsgspecError as exc:
            raise self._bad_response(op.path, exc) from exc
        if op.check_upstream is not None and (wrong := op.check_upstream(request, result)):
            raise self._bad_response(op.path, ValueError(wrong))
        return result

    async def _stream(
        self, op: Operation[Req, Any, Chunk], request: Req
    ) -> AsyncGenerator[Chunk, None]:
        chunk_type = op.chunk
        if chunk_type is None:
            raise InternalError(f"operation '{op.name}' does not stream")
        wire = self._require_wire()
        path, body, headers = self._encode(op, request)
        self._name_tenant(headers)
        propagate(headers)
        self._check_circuit()
        try:
            async with wire.stream(op.method, path, body, headers) as response:
                if response.status >= 400:
                    raise _error(response.status, await response.read(), "", response.retry_after)
                if response.content_type != "text/event-stream":
                    raise self._bad_response(
                        op.path,
                        ValueError(f"expected an SSE stream, got {response.content_type!r}"),
                    )
                async for data in iter_data(response.lines()):
                    if data == DONE:
                        return
                    yield self._decode_chunk(data, chunk_type, op.path)
        except WireError as exc:
            raise self._unavailable(exc) from exc

    async def list_models(self) -> list[ModelCard]:
        response = await self._send("GET", _MODELS_PATH, None, self._settings.connect_timeout_s)
        if response.status >= 400:
            raise _error(response.status, response.content, response.reason, response.retry_after)
        try:
            return msgspec.json.decode(response.content, type=ModelList).data
        except msgspec.MsgspecError as exc:
            raise self._bad_response(_MODELS_PATH, exc) from exc

    async def status(self) -> EngineStatus:
        """Whether the upstream answers its readiness path ready; while the circuit is open,
        the breaker's account at once, without waiting on the upstream again."""
        breaker = self._breaker
        if breaker is not None and breaker.state == "open":
            return EngineStatus(mode="remote", ready=False, detail=breaker.detail, circuit="open")
        result = await self._probe()
        circuit = breaker.state if breaker is not None else None
        return EngineStatus(
            mode="remote", ready=result.ready, detail=result.detail, circuit=circuit
        )

    async def _probe(self) -> ProbeResult:
        """Ask the upstream's readiness path (``ready_path``, else ``/ready`` falling back to
        ``/health``) within ``connect_timeout_s``. A refused connection opens the circuit; a
        probe that times out is only reported (the upstream may be busy)."""
        paths = [self._settings.ready_path] if self._settings.ready_path else ["/ready", "/health"]
        wire = self._require_wire()
        for path in paths:
            try:
                response = await wire.request(
                    "GET", path, None, {}, deadline_s=self._settings.connect_timeout_s
                )
            except WireError as exc:
                if exc.kind == "connect" and self._breaker is not None:
                    self._breaker.unreachable(exc.reason)
                return ProbeResult(answered=False, ready=False, detail=self._error_of(exc).message)
            if response.status == 404 and path != paths[-1]:
                continue
            ready = response.status < 400
            detail = (
                self._base_url if ready else f"{self._base_url}{path} answered {response.status}"
            )
            return ProbeResult(answered=True, ready=ready, detail=detail)
        return ProbeResult(answered=False, ready=False, detail="no readiness path to probe")

    # -- plumbing ------------------------------------------------------------------------------

    def _encode(
        self, op: Operation[Req, Any, Any], request: Req
    ) -> tuple[str, bytes | None, dict[str, str]]:
        """Path, body and headers of ``request`` as ``op`` sends it."""
        if op.upstream_request is not None:
            request = op.upstream_request(request)
        path = op.path_with(lambda name: path_segment(check_id(name, getattr(request, name))))
        if op.body == "query":
            return _with_query(path, request, op.path_params), None, {}
        if op.body == "form":
            body, content_type = encode_form(request)
            return path, body, {"content-type": content_type}
        if op.path_params:
            kept = {
                key: value
                for key, value in msgspec.to_builtins(request).items()
                if key not in op.path_params
            }
            return path, self._encoder.encode(kept), dict(_JSON)
        return path, self._encoder.encode(request), dict(_JSON)

    def _require_wire(self) -> Wire:
        if not self._open:
            raise EngineUnavailableError(f"Engine '{self._name}' has not been started.")
        return self._wire

    async def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        deadline_s: float | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> WireResponse:
        wire = self._require_wire()
        if headers is None:
            headers = dict(_JSON) if body is not None else {}
        self._name_tenant(headers)
        propagate(headers)
        self._check_circuit()
        try:
            return await wire.request(
                method, path, body, headers, deadline_s=deadline_s or self._settings.timeout_s
            )
        except WireError as exc:
            raise self._unavailable(exc) from exc

    def _check_circuit(self) -> None:
        if self._breaker is not None:
            self._breaker.check()

    def _trip(self, exc: WireError) -> None:
        """Tell the breaker of a failure in transport: a refused connection opens it, a call
        that timed out or broke off has it probe (not a response that was unusable: the
        upstream is there and answering)."""
        if self._breaker is None or exc.kind == "invalid":
            return
        if exc.kind == "connect":
            self._breaker.unreachable(exc.reason)
        else:
            self._breaker.suspect(f"{exc.kind}: {exc.reason}")

    def _unavailable(self, exc: WireError) -> AIPlatformError:
        self._trip(exc)
        return self._error_of(exc)

    def _error_of(self, exc: WireError) -> AIPlatformError:
        where = f"Engine '{self._name}' at {self._base_url}"
        if exc.kind == "timeout":
            return UpstreamTimeoutError(f"{where} timed out: {exc.reason}", code="upstream_timeout")
        if exc.kind == "invalid":
            return BadGatewayError(f"{where} {exc.reason}", code="bad_upstream_response")
        if exc.kind == "connect":
            return EngineUnavailableError(
                f"{where} is unreachable: {exc.reason}", code="upstream_unavailable"
            )
        return EngineUnavailableError(
            f"{where} broke off the response: {exc.reason}", code="upstream_unavailable"
        )

    def _decode_chunk(self, data: str, chunk_type: type[Chunk], path: str) -> Chunk:
        try:
            return msgspec.json.decode(data, type=chunk_type)
        except msgspec.MsgspecError as exc:
            try:
                payload = msgspec.json.decode(data)
            except msgspec.DecodeError:
                payload = None
            if isinstance(payload, dict) and "error" in payload:
                raise _streamed_error(payload, data) from exc
            raise self._bad_response(path, exc) from exc

    def _bad_response(self, path: str, exc: Exception) -> AIPlatformError:
        return BadGatewayError(
            f"Engine '{self._name}' at {self._base_url} sent an unexpected response to "
            f"{path}: {exc}",
            code="bad_upstream_response",
        )


def _with_query(path: str, request: msgspec.Struct, exclude: tuple[str, ...] = ()) -> str:
    """``path`` with the request's set fields as query parameters (the route converts them
    back with msgspec, which reads ``True``/``False`` and numbers from text)."""
    params = {
        key: value
        for key, value in msgspec.to_builtins(request).items()
        if value is not None and key not in exclude
    }
    return f"{path}?{urlencode(params, doseq=True)}" if params else path


def _base_url(url: str) -> str:
    """``url`` without a trailing slash or ``/v1``: operation paths already start with it."""
    parts = urlsplit(url.rstrip("/"))
    path = parts.path.removesuffix("/v1")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _error(
    status: int, content: bytes, reason: str, retry_after: str | None = None
) -> AIPlatformError:
    """The platform error for an upstream error response, whatever shape its body has; an
    upstream's ``Retry-After`` (in seconds) is passed on with it."""
    try:
        payload = msgspec.json.decode(content)
    except msgspec.DecodeError:
        payload = None
    text = content.decode("utf-8", "replace").strip()[:300] or reason
    message, param, code = _fields_from_payload(payload, f"upstream answered {status}: {text}")
    error = _upstream_error(status, message, param=param, code=code)
    error.retry_after_s = _seconds(retry_after)
    return error


def _upstream_error(
    status: int, message: str, *, param: str | None, code: str | None
) -> AIPlatformError:
    """The error passed on for an upstream's: its own class, except that an upstream failing
    (a 5xx other than 503 unavailable and 504 timed out) is a 502 here."""
    if status >= 500 and status not in (503, 504):
        return BadGatewayError(
            f"upstream failed ({status}): {message}", param=param, code=code or "upstream_error"
        )
    return error_for_status(status, message, param=param, code=code)


#: The longest ``Retry-After`` passed on; an upstream asking for more is told to ask again.
_MAX_RETRY_AFTER_S = 3600


def _seconds(retry_after: str | None) -> float | None:
    """``Retry-After`` as seconds, when it is the delay form (digits); the HTTP-date form and
    anything else are not passed on."""
    value = (retry_after or "").strip()
    if not value.isdigit() or not value.isascii():
        return None
    return float(min(int(value), _MAX_RETRY_AFTER_S))


def _streamed_error(payload: dict[str, Any], fallback: str) -> AIPlatformError:
    """The platform error of an ``{"error": ...}`` event inside a stream, which has no status
    line of its own.

    Our servers send the status as ``http_status`` beside OpenAI's fields; vLLM sends it as an
    integer ``code``; otherwise the OpenAI ``type`` names it as closely as it can (404, 409 and
    413 all share ``invalid_request_error``, which reads as 400).
    """
    message, param, code = _fields_from_payload(payload, fallback)
    error = payload.get("error")
    fields: dict[str, Any] = error if isinstance(error, dict) else {}
    status = _http_status(fields.get("http_status"))
    if status is None and (status := _http_status(fields.get("code"))) is not None:
        code = None
    if status is None:
        error_type = fields.get("type")
        status = status_for_type(error_type if isinstance(error_type, str) else None)
    return error_for_status(status, message, param=param, code=code)


def _http_status(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 400 <= value < 600:
        return value
    return None


def _fields_from_payload(payload: object, fallback: str) -> tuple[str, str | None, str | None]:
    """Message, param and code from OpenAI's error shape, or the common non-OpenAI ones."""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            param, code = error.get("param"), error.get("code")
            return (
                error["message"],
                param if isinstance(param, str) else None,
                str(code) if code is not None else None,
            )
        for key in ("error", "detail", "message"):
            if isinstance(payload.get(key), str):
                return payload[key], None, None
    return fallback, None, None
