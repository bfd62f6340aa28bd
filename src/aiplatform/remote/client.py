"""The remote adapter: any engine kind, forwarded over HTTP by one generic class.

It encodes the operation's request type, calls the operation's path on the configured URL,
decodes the response type (or the SSE stream of chunk types) and turns upstream error responses
back into the platform's own errors. Because the paths are OpenAI's, the same class forwards to
our own pod (``aiplatform serve --engines NAME``) and to any OpenAI-compatible server.

Connection failures and timeouts become a 503 within the configured deadline; the connection
pool reconnects on the next call, so an upstream that comes back is used again at once. The HTTP
layer itself is :mod:`aiplatform.remote.wire`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import anyio
import httpx
import msgspec

from aiplatform import __version__
from aiplatform.api.health import EngineStatus
from aiplatform.api.openai import ModelCard, ModelList
from aiplatform.engines.base import EngineKind, EngineMode, Operation
from aiplatform.errors import (
    AIPlatformError,
    EngineUnavailableError,
    InternalError,
    error_for_status,
    status_for_type,
)
from aiplatform.forms import encode_form
from aiplatform.remote.wire import AiohttpWire, HttpxWire, Wire, WireError, WireResponse
from aiplatform.settings import EngineSettings
from aiplatform.sse import DONE, iter_data
from aiplatform.tenancy import TENANT_HEADER, current_tenant

__all__ = ["RemoteEngine"]

logger = logging.getLogger(__name__)

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)
Chunk = TypeVar("Chunk", bound=msgspec.Struct)

_JSON = {"content-type": "application/json"}
_MODELS_PATH = "/v1/models"


class RemoteEngine:
    """An :class:`~aiplatform.engines.base.Engine` whose calls go to ``settings.url``.

    ``transport`` replaces the network (``httpx.ASGITransport(app)`` calls an app in-process).
    """

    def __init__(
        self,
        kind: EngineKind[Any],
        settings: EngineSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not settings.url:
            raise ValueError(f"engine {kind.name!r} has no url to forward to")
        self._kind = kind
        self._settings = settings
        self._base_url = _base_url(settings.url)
        self._transport = transport
        self._wire: Wire | None = None
        self._encoder = msgspec.json.Encoder()

    @property
    def kind(self) -> EngineKind[Any]:
        return self._kind

    @property
    def mode(self) -> EngineMode:
        return "remote"

    @property
    def url(self) -> str:
        return self._base_url

    async def __aenter__(self) -> Self:
        settings = self._settings
        headers = {"user-agent": f"aiplatform/{__version__}"}
        if settings.api_key:
            headers["authorization"] = f"Bearer {settings.api_key}"
        if self._transport is not None:
            self._wire = HttpxWire(
                self._base_url,
                transport=self._transport,
                headers=headers,
                connect_timeout_s=settings.connect_timeout_s,
                read_timeout_s=settings.timeout_s,
            )
        else:
            self._wire = AiohttpWire(
                self._base_url,
                headers=headers,
                max_connections=settings.max_connections,
                connect_timeout_s=settings.connect_timeout_s,
                read_timeout_s=settings.timeout_s,
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        wire, self._wire = self._wire, None
        if wire is not None:
            await wire.aclose()

    async def invoke(self, op: Operation[Req, Resp, Any], request: Req) -> Resp:
        path, body, headers = self._encode(op, request)
        response = await self._send(op.method, path, body, headers=headers)
        if response.status >= 400:
            raise _error(response.status, response.content, response.reason)
        try:
            return msgspec.json.decode(response.content, type=op.response)
        except msgspec.MsgspecError as exc:
            raise self._bad_response(op.path, exc) from exc

    async def stream(self, op: Operation[Req, Any, Chunk], request: Req) -> AsyncIterator[Chunk]:
        chunk_type = op.chunk
        if chunk_type is None:
            raise InternalError(f"operation '{op.name}' does not stream")
        wire = self._require_wire()
        path, body, headers = self._encode(op, request)
        headers[TENANT_HEADER] = current_tenant()
        try:
            async with wire.stream(op.method, path, body, headers) as response:
                if response.status >= 400:
                    raise _error(response.status, await response.read(), "")
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
            raise _error(response.status, response.content, response.reason)
        try:
            return msgspec.json.decode(response.content, type=ModelList).data
        except msgspec.MsgspecError as exc:
            raise self._bad_response(_MODELS_PATH, exc) from exc

    async def status(self) -> EngineStatus:
        paths = [self._settings.ready_path] if self._settings.ready_path else ["/ready", "/health"]
        detail = ""
        for path in paths:
            try:
                response = await self._send("GET", path, None, self._settings.connect_timeout_s)
            except EngineUnavailableError as exc:
                return EngineStatus(mode="remote", ready=False, detail=exc.message)
            if response.status == 404 and path != paths[-1]:
                continue
            if response.status < 400:
                return EngineStatus(mode="remote", ready=True, detail=self._base_url)
            detail = f"{self._base_url}{path} answered {response.status}"
            break
        return EngineStatus(mode="remote", ready=False, detail=detail)

    # -- plumbing ------------------------------------------------------------------------------

    def _encode(
        self, op: Operation[Req, Any, Any], request: Req
    ) -> tuple[str, bytes | None, dict[str, str]]:
        """Path, body and headers of ``request`` as ``op`` sends it."""
        if op.upstream_request is not None:
            request = op.upstream_request(request)
        path = op.path_with(lambda name: quote(str(getattr(request, name)), safe=""))
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
        if self._wire is None:
            raise EngineUnavailableError(f"Engine '{self._kind.name}' has not been started.")
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
        deadline = deadline_s or self._settings.timeout_s
        if headers is None:
            headers = dict(_JSON) if body is not None else {}
        headers[TENANT_HEADER] = current_tenant()
        try:
            with anyio.fail_after(deadline):
                return await wire.request(method, path, body, headers)
        except TimeoutError as exc:
            raise self._unavailable(
                WireError("timeout", f"no answer within {deadline:g}s")
            ) from exc
        except WireError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: WireError) -> EngineUnavailableError:
        where = f"Engine '{self._kind.name}' at {self._base_url}"
        if exc.kind == "timeout":
            return EngineUnavailableError(
                f"{where} timed out: {exc.reason}", code="upstream_timeout"
            )
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
                message, param, code = _fields_from_payload(payload, data)
                error = payload["error"]
                error_type = error.get("type") if isinstance(error, dict) else None
                status = status_for_type(error_type if isinstance(error_type, str) else None)
                raise error_for_status(status, message, param=param, code=code) from exc
            raise self._bad_response(path, exc) from exc

    def _bad_response(self, path: str, exc: Exception) -> AIPlatformError:
        return InternalError(
            f"Engine '{self._kind.name}' at {self._base_url} sent an unexpected response to "
            f"{path}: {exc}",
            code="bad_upstream_response",
            status_code=502,
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


def _error(status: int, content: bytes, reason: str) -> AIPlatformError:
    """The platform error for an upstream error response, whatever shape its body has."""
    try:
        payload = msgspec.json.decode(content)
    except msgspec.DecodeError:
        payload = None
    text = content.decode("utf-8", "replace").strip()[:300] or reason
    message, param, code = _fields_from_payload(payload, f"upstream answered {status}: {text}")
    return error_for_status(status, message, param=param, code=code)


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
