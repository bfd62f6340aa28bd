"""The HTTP layer under the remote adapter: send bytes to a path, get status, headers, bytes.

Two implementations of one small protocol:

- :class:`AiohttpWire` for the network: pooled keep-alive connections. Chosen over an httpx
  client because a forwarded call pays the client's per-request cost on every hop (measured:
  about 0.2 ms for aiohttp against 0.9 ms for ``httpx.AsyncClient`` on loopback; see
  ``docs/adr/0002-remote-wire.md``).
- :class:`HttpxWire` over any ``httpx`` transport, above all ``httpx.ASGITransport(app)``,
  which calls an ASGI app in-process with no socket.

Both raise :class:`WireError` for anything that is not an HTTP response, so the adapter maps
failures once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp
import httpx

__all__ = ["AiohttpWire", "HttpxWire", "Wire", "WireError", "WireResponse", "WireStream"]

FailureKind = Literal["connect", "timeout", "broken"]


class WireError(Exception):
    """No usable HTTP response: the connection failed, timed out, or broke mid-way."""

    def __init__(self, kind: FailureKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True, slots=True)
class WireResponse:
    status: int
    content_type: str
    content: bytes
    reason: str = ""


class WireStream(Protocol):
    """An open response whose body is read as lines (server-sent events)."""

    @property
    def status(self) -> int: ...

    @property
    def content_type(self) -> str: ...

    async def read(self) -> bytes: ...

    def lines(self) -> AsyncIterator[str]: ...


class Wire(Protocol):
    async def request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> WireResponse: ...

    def stream(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> AbstractAsyncContextManager[WireStream]: ...

    async def aclose(self) -> None: ...


class AiohttpWire:
    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        max_connections: int,
        connect_timeout_s: float,
        read_timeout_s: float,
    ) -> None:
        self._base_url = base_url
        self._session = aiohttp.ClientSession(
            headers=dict(headers),
            connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=max_connections),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s
            ),
            raise_for_status=False,
            auto_decompress=True,
        )

    async def request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> WireResponse:
        try:
            async with self._session.request(
                method, self._base_url + path, data=body, headers=headers
            ) as response:
                content = await response.read()
                return WireResponse(
                    response.status, response.content_type, content, response.reason or ""
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _aiohttp_failure(exc) from exc

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> AsyncIterator[WireStream]:
        try:
            async with self._session.request(
                method, self._base_url + path, data=body, headers=headers
            ) as response:
                yield _AiohttpStream(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _aiohttp_failure(exc) from exc

    async def aclose(self) -> None:
        await self._session.close()


class _AiohttpStream:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def content_type(self) -> str:
        return self._response.content_type

    async def read(self) -> bytes:
        return await self._response.read()

    async def lines(self) -> AsyncIterator[str]:
        async for line in self._response.content:
            yield line.decode("utf-8").rstrip("\r\n")


def _aiohttp_failure(exc: BaseException) -> WireError:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return WireError("timeout", reason)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return WireError("connect", reason)
    return WireError("broken", reason)


class HttpxWire:
    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport,
        headers: Mapping[str, str],
        connect_timeout_s: float,
        read_timeout_s: float,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            headers=dict(headers),
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
        )

    async def request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> WireResponse:
        try:
            response = await self._client.request(method, path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise _httpx_failure(exc) from exc
        content_type = _media_type(response.headers.get("content-type", ""))
        return WireResponse(
            response.status_code, content_type, response.content, response.reason_phrase
        )

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> AsyncIterator[WireStream]:
        try:
            async with self._client.stream(method, path, content=body, headers=headers) as response:
                yield _HttpxStream(response)
        except httpx.HTTPError as exc:
            raise _httpx_failure(exc) from exc

    async def aclose(self) -> None:
        await self._client.aclose()


class _HttpxStream:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def content_type(self) -> str:
        return _media_type(self._response.headers.get("content-type", ""))

    async def read(self) -> bytes:
        return await self._response.aread()

    async def lines(self) -> AsyncIterator[str]:
        async for line in self._response.aiter_lines():
            yield line


def _media_type(content_type: str) -> str:
    return content_type.split(";", maxsplit=1)[0].strip().lower()


def _httpx_failure(exc: httpx.HTTPError) -> WireError:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return WireError("timeout", reason)
    if isinstance(exc, httpx.ConnectError):
        return WireError("connect", reason)
    return WireError("broken", reason)
