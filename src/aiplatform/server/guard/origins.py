"""Browser origins: the server's own, and those the settings let call it across sites (CORS).

A browser names the page behind a request in its ``Origin`` header (``scheme://host[:port]``),
on every cross-site request, on every ``POST`` and on WebSocket handshakes; other clients send
none. A request comes from the server's own origin when that origin's host and port are the
request's ``Host``: the server's own pages (``/docs``) behind any proxy that keeps ``Host``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiplatform.server.guard.hosts import split_host

__all__ = ["ANY_ORIGIN", "CorsPolicy", "origin_entry", "same_origin"]

ANY_ORIGIN = "*"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
#: A header name (RFC 9110 token): what a preflight may ask for and be answered with.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
#: Methods a page of an allowed origin may use.
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
#: Request headers always allowed to an allowed origin, besides those its preflight names.
CORS_HEADERS = ("authorization", "content-type")
#: Response headers a page may read besides the CORS-safelisted ones.
CORS_EXPOSED = "Retry-After"
#: Seconds a browser may keep a preflight's answer.
CORS_MAX_AGE = 600


def origin_entry(entry: str) -> str:
    """``entry`` of ``cors_origins`` as browsers spell an origin (lower-case, no default port,
    no trailing slash); ValueError when it is not ``scheme://host[:port]`` or ``*``."""
    value = entry.strip().lower().removesuffix("/")
    if value == ANY_ORIGIN:
        return value
    if value == "null":
        raise ValueError(
            "cors_origins cannot hold 'null': sandboxed frames and local files of any site send it"
        )
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    valid = (
        _SCHEME.fullmatch(parts.scheme)
        and parts.hostname
        and not (parts.path or parts.query or parts.fragment or parts.username or port == -1)
    )
    if not valid or "#" in value or "?" in value:
        raise ValueError(f"cors_origins entry {entry!r} is not 'scheme://host[:port]' or '*'")
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme):
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def same_origin(origin: str, host_header: str | None) -> bool:
    """Whether ``origin`` is the origin the request was sent to: its host and port are those
    of the ``Host`` header (a Host without a port stands for the origin scheme's default)."""
    if host_header is None:
        return False
    target = split_host(host_header)
    parts = urlsplit(origin.strip().lower())
    try:
        origin_port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return False
    if target is None or parts.hostname is None or origin_port is None:
        return False
    name, port = target
    host_port = port if port is not None else _DEFAULT_PORTS.get(parts.scheme)
    return _same_name(parts.hostname, name) and origin_port == host_port


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Which origins may call the server from their pages, and the headers that say so.

    Without origins the server sends no CORS header at all, so browsers keep other sites from
    reading its answers. With them, an allowed origin's preflight is answered and its responses
    carry ``Access-Control-Allow-Origin``.
    """

    origins: frozenset[str] = frozenset()
    credentials: bool = False

    @classmethod
    def of(cls, origins: Iterable[str], *, credentials: bool = False) -> CorsPolicy:
        """The policy of the settings' entries; ValueError for an entry that is not an origin,
        and for credentials with ``*`` (every site's pages could then act with a user's
        cookies)."""
        entries = frozenset(origin_entry(origin) for origin in origins)
        if credentials and ANY_ORIGIN in entries:
            raise ValueError("cors_allow_credentials needs the origins listed, not '*'")
        return cls(entries, credentials)

    @property
    def enabled(self) -> bool:
        return bool(self.origins)

    def allows(self, origin: str) -> bool:
        """Whether pages of ``origin`` may call the server across sites."""
        return ANY_ORIGIN in self.origins or origin.strip().lower() in self.origins

    def response_headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        """Headers for a response to an allowed ``origin``."""
        headers = self._origin_headers(origin)
        headers.append((b"access-control-expose-headers", CORS_EXPOSED.encode()))
        return headers

    def preflight_headers(self, origin: str, requested: str | None) -> list[tuple[bytes, bytes]]:
        """Headers of the answer to an allowed ``origin``'s preflight. The headers it asks for
        are allowed as long as they are header names: the origin is trusted, and the official
        SDKs send headers of their own (``X-Stainless-*``) that a fixed list would refuse."""
        asked = {name.strip().lower() for name in (requested or "").split(",")}
        allowed = sorted({*CORS_HEADERS, *(name for name in asked if _TOKEN.fullmatch(name))})
        return [
            *self._origin_headers(origin),
            (b"access-control-allow-methods", CORS_METHODS.encode()),
            (b"access-control-allow-headers", ", ".join(allowed).encode("latin-1")),
            (b"access-control-max-age", str(CORS_MAX_AGE).encode()),
        ]

    def _origin_headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        if ANY_ORIGIN in self.origins and not self.credentials:
            return [(b"access-control-allow-origin", b"*")]
        headers = [
            (b"access-control-allow-origin", origin.strip().encode("latin-1")),
            (b"vary", b"Origin"),
        ]
        if self.credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        return headers


def _same_name(origin_host: str, host_name: str) -> bool:
    """Host names compared as :func:`split_host` spells them (IPv6 compressed)."""
    parsed = split_host(f"[{origin_host}]" if ":" in origin_host else origin_host)
    return parsed is not None and parsed[0] == host_name
