"""The HTTP layer under the remote adapter: send bytes to a path, get status, headers, bytes.

The wire is the remote adapter's seam: :class:`~aiplatform.remote.client.RemoteEngine` takes one
(unopened) and opens it with the engine's :class:`WireOptions` (base URL, headers, deadlines,
pool size) when the engine is entered. Two implementations of one small protocol:

- :class:`AiohttpWire` (the default) for the network: pooled keep-alive connections. Chosen
  over an httpx client because a forwarded call pays the client's per-request cost on every
  hop (measured: about 0.2 ms for aiohttp against 0.9 ms for ``httpx.AsyncClient`` on
  loopback; see ``docs/adr/0002-remote-wire.md``).
- :class:`HttpxWire` over any ``httpx`` transport, above all ``HttpxWire(ASGITransport(app))``,
  which calls an ASGI app in-process with no socket (and ``httpx.MockTransport`` in tests).

Both raise :class:`WireError` for anything that is not a usable HTTP response, so the adapter
maps failures once. Both read bodies within the engine's byte limits, decode compressed ones
themselves (bounded, :mod:`aiplatform.remote.bounded`) and never follow a redirect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp
import anyio
import httpx
from yarl import URL

from aiplatform.remote.bounded import (
    ACCEPT_ENCODING,
    UnusableResponseError,
    check_length,
    check_not_redirect,
    read_body,
    read_lines,
)

__all__ = [
    "AiohttpWire",
    "HttpxWire",
    "Wire",
    "WireClosedError",
    "WireError",
    "WireOptions",
    "WireResponse",
    "WireStream",
]

FailureKind = Literal["connect", "timeout", "broken", "invalid"]


class WireError(Exception):
    """No usable HTTP response: the connection failed, timed out, or broke mid-way, or the
    upstream's answer is ``invalid`` (past a byte limit, undecodable, a redirect)."""

    def __init__(self, kind: FailureKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class WireOptions:
    """What a wire is opened with: where requests go, and the engine's connection settings."""

    base_url: str
    #: Sent on every request (user agent, authorization).
    headers: Mapping[str, str]
    connect_timeout_s: float
    read_timeout_s: float
    max_connections: int = 64
    #: A response body's bytes, on the wire and decoded alike.
    max_response_bytes: int = 64 * 1024 * 1024
    #: One line (server-sent event) of a streamed response, decoded.
    max_event_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class WireResponse:
    status: int
    content_type: str
    content: bytes
    reason: str = ""
    #: The ``Retry-After`` header of a refusal (429, 503), for the error passed on downstream.
    retry_after: str | None = None


class WireStream(Protocol):
    """An open response whose body is read as lines (server-sent events)."""

    @property
    def status(self) -> int: ...

    @property
    def content_type(self) -> str: ...

    @property
    def retry_after(self) -> str | None: ...

    async def read(self) -> bytes: ...

    def lines(self) -> AsyncIterator[str]: ...


class Wire(Protocol):
    """Bytes to a path and back. ``open`` comes first; ``aclose`` releases what it opened, after
    which ``open`` may be called again (an engine entered a second time).

    ``request`` answers within ``deadline_s`` or raises ``WireError("timeout")``: each wire keeps
    the deadline with its own timers, which on the network path costs far less than a cancel
    scope around the call.
    """

    async def open(self, options: WireOptions) -> None: ...

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
        *,
        deadline_s: float,
    ) -> WireResponse: ...

    def stream(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> AbstractAsyncContextManager[WireStream]: ...

    async def aclose(self) -> None: ...


class WireClosedError(RuntimeError):
    """A wire used before ``open`` or after ``aclose``."""


class AiohttpWire:
    """The network: a pooled keep-alive ``aiohttp`` session."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._base_url = ""
        self._connect_timeout_s = 0.0
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._limits = WireOptions(base_url="", headers={}, connect_timeout_s=0, read_timeout_s=0)

    async def open(self, options: WireOptions) -> None:
        # Paths come percent-encoded from the adapter and are sent as they are (yarl would
        # otherwise decode %2E and resolve dot segments), so the base is encoded once here.
        self._base_url = str(URL(options.base_url))
        self._connect_timeout_s = options.connect_timeout_s
        self._timeouts.clear()
        self._limits = options
        limit = options.max_connections
        self._session = aiohttp.ClientSession(
            headers={"accept-encoding": ACCEPT_ENCODING, **options.headers},
            connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit),
            cookie_jar=aiohttp.DummyCookieJar(),  # an engine's upstream keeps no session
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=options.connect_timeout_s,
                sock_read=options.read_timeout_s,
            ),
            raise_for_status=False,
            auto_decompress=False,  # decoded within the limits by the wire itself
        )

    def _require(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise WireClosedError("the wire is not open")
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
        *,
        deadline_s: float,
    ) -> WireResponse:
        session = self._require()
        timeout = self._timeouts.get(deadline_s)
        if timeout is None:  # one per deadline in use (the call's, the probes')
            timeout = aiohttp.ClientTimeout(
                total=deadline_s, sock_connect=min(self._connect_timeout_s, deadline_s)
            )
            self._timeouts[deadline_s] = timeout
        try:
            async with session.request(
                method,
                URL(self._base_url + path, encoded=True),
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                check_not_redirect(response.status, response.headers.get("location"))
                content = await _aiohttp_body(response, self._limits.max_response_bytes)
                return WireResponse(
                    response.status,
                    response.content_type,
                    content,
                    response.reason or "",
                    response.headers.get("retry-after"),
                )
        except TimeoutError as exc:
            reason = str(exc) or f"no answer within {deadline_s:g}s"
            raise WireError("timeout", reason) from exc
        except aiohttp.ClientError as exc:
            raise _aiohttp_failure(exc) from exc
        except UnusableResponseError as exc:
            raise WireError("invalid", str(exc)) from exc

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> AsyncIterator[WireStream]:
        session = self._require()
        try:
            async with session.request(
                method,
                URL(self._base_url + path, encoded=True),
                data=body,
                headers=headers,
                allow_redirects=False,
            ) as response:
                check_not_redirect(response.status, response.headers.get("location"))
                yield _AiohttpStream(response, self._limits)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _aiohttp_failure(exc) from exc
        except UnusableResponseError as exc:
            raise WireError("invalid", str(exc)) from exc

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _AiohttpStream:
    def __init__(self, response: aiohttp.ClientResponse, limits: WireOptions) -> None:
        self._response = response
        self._limits = limits

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def content_type(self) -> str:
        return self._response.content_type

    @property
    def retry_after(self) -> str | None:
        return self._response.headers.get("retry-after")

    async def read(self) -> bytes:
        return await _aiohttp_body(self._response, self._limits.max_response_bytes)

    def lines(self) -> AsyncIterator[str]:
        encoding = self._response.headers.get("content-encoding")
        chunks = self._response.content.iter_any()
        return read_lines(chunks, encoding, self._limits.max_event_bytes)


async def _aiohttp_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body within ``limit``: a plain body of a declared length that fits is read at once
    (the parser stops at its length); any other is read in bounded steps."""
    length = response.headers.get("content-length")
    check_length(length, limit)
    encoding = response.headers.get("content-encoding")
    if length is not None and encoding in (None, "", "identity"):
        return await response.read()
    return await read_body(response.content.iter_any(), encoding, limit)


def _aiohttp_failure(exc: BaseException) -> WireError:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return WireError("timeout", reason)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return WireError("connect", reason)
    return WireError("broken", reason)


class HttpxWire:
    """Any ``httpx`` transport: ``HttpxWire(httpx.ASGITransport(app))`` calls an app in the same
    process with no socket; ``httpx.MockTransport(handler)`` answers from a function."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._limits = WireOptions(base_url="", headers={}, connect_timeout_s=0, read_timeout_s=0)

    async def open(self, options: WireOptions) -> None:
        self._limits = options
        self._client = httpx.AsyncClient(
            base_url=options.base_url,
            transport=self._transport,
            headers={"accept-encoding": ACCEPT_ENCODING, **options.headers},
            timeout=httpx.Timeout(options.read_timeout_s, connect=options.connect_timeout_s),
            follow_redirects=False,
        )

    def _require(self) -> httpx.AsyncClient:
        if self._client is None:
            raise WireClosedError("the wire is not open")
        return self._client

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
        *,
        deadline_s: float,
    ) -> WireResponse:
        client = self._require()
        try:
            with anyio.fail_after(deadline_s):
                async with client.stream(method, path, content=body, headers=headers) as response:
                    check_not_redirect(response.status_code, response.headers.get("location"))
                    content = await _httpx_body(response, self._limits.max_response_bytes)
        except TimeoutError as exc:
            raise WireError("timeout", f"no answer within {deadline_s:g}s") from exc
        except httpx.HTTPError as exc:
            raise _httpx_failure(exc) from exc
        except UnusableResponseError as exc:
            raise WireError("invalid", str(exc)) from exc
        content_type = _media_type(response.headers.get("content-type", ""))
        return WireResponse(
            response.status_code,
            content_type,
            content,
            response.reason_phrase,
            response.headers.get("retry-after"),
        )

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> AsyncIterator[WireStream]:
        client = self._require()
        try:
            async with client.stream(method, path, content=body, headers=headers) as response:
                check_not_redirect(response.status_code, response.headers.get("location"))
                yield _HttpxStream(response, self._limits)
        except httpx.HTTPError as exc:
            raise _httpx_failure(exc) from exc
        except UnusableResponseError as exc:
            raise WireError("invalid", str(exc)) from exc

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()  # and the transport (ASGI and mock ones open again freely)


class _HttpxStream:
    def __init__(self, response: httpx.Response, limits: WireOptions) -> None:
        self._response = response
        self._limits = limits

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def content_type(self) -> str:
        return _media_type(self._response.headers.get("content-type", ""))

    @property
    def retry_after(self) -> str | None:
        value: str | None = self._response.headers.get("retry-after")
        return value

    async def read(self) -> bytes:
        return await _httpx_body(self._response, self._limits.max_response_bytes)

    def lines(self) -> AsyncIterator[str]:
        chunks, encoding = _httpx_raw(self._response)
        return read_lines(chunks, encoding, self._limits.max_event_bytes)


async def _httpx_body(response: httpx.Response, limit: int) -> bytes:
    check_length(response.headers.get("content-length"), limit)
    chunks, encoding = _httpx_raw(response)
    return await read_body(chunks, encoding, limit)


def _httpx_raw(response: httpx.Response) -> tuple[AsyncIterator[bytes], str | None]:
    """The body's bytes as sent and their encoding; a response that came already read (from
    ``httpx.MockTransport``) gives its content, decoded."""
    if response.is_stream_consumed:
        return response.aiter_bytes(), None
    return response.aiter_raw(), response.headers.get("content-encoding")


def _media_type(content_type: str) -> str:
    return content_type.split(";", maxsplit=1)[0].strip().lower()


def _httpx_failure(exc: httpx.HTTPError) -> WireError:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return WireError("timeout", reason)
    if isinstance(exc, httpx.ConnectError):
        return WireError("connect", reason)
    return WireError("broken", reason)
