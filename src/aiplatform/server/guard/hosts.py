"""The ``Host`` names the server answers to.

A page on ``evil.example`` whose name is made to resolve to ``127.0.0.1`` (DNS rebinding) reaches
a server on the loopback address as its own origin: the browser's same-origin rule no longer
protects it. What still tells the request apart is its ``Host`` header, which names
``evil.example``. Patterns are names without a port (any port matches): ``localhost``, an
address (``127.0.0.1``, ``::1`` or ``[::1]``), ``*.example.com`` (any name below
``example.com``, not ``example.com`` itself) or ``*`` (any Host, a missing one included).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

__all__ = [
    "ANY_HOST",
    "LOOPBACK_HOSTS",
    "effective_allowed_hosts",
    "host_allowed",
    "host_pattern",
    "is_loopback",
    "split_host",
]

ANY_HOST = "*"
#: The names a client on the same machine reaches a loopback server by (any port).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")

#: A DNS name or an IPv4 address, lower-case (``_`` for container and Compose service names).
_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_PORT = re.compile(r"[0-9]{1,5}")


def split_host(header: str) -> tuple[str, int | None] | None:
    """The name and port of a ``Host`` header, the name lower-case without brackets or a
    trailing dot; None when the header is malformed."""
    value = header.strip().lower()
    if value.startswith("["):
        inside, closed, rest = value[1:].partition("]")
        name = _ipv6(inside) if closed else None
        if name is None or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, colon, port_text_or_empty = value.partition(":")
        port_text = port_text_or_empty if colon else None
        name = name.removesuffix(".")
        if not _NAME.fullmatch(name):
            return None
    if port_text is None:
        return name, None
    if not _PORT.fullmatch(port_text):
        return None
    return name, int(port_text)


def host_pattern(entry: str) -> str:
    """``entry`` of ``allowed_hosts`` in the form :func:`host_allowed` compares; ValueError
    when it is not a name, an address, ``*.name`` or ``*``."""
    value = entry.strip().lower()
    if value == ANY_HOST:
        return value
    if value.startswith("*."):
        suffix = value[2:].removesuffix(".")
        if _NAME.fullmatch(suffix):
            return f"*.{suffix}"
    elif ":" in value and (address := _ipv6(value.removeprefix("[").removesuffix("]"))):
        return address
    elif _NAME.fullmatch(name := value.removesuffix(".")):
        return name
    raise ValueError(
        f"allowed_hosts entry {entry!r} is not a host name, an address, '*.name' or '*' "
        "(names only: any port matches)"
    )


def host_allowed(header: str | None, patterns: Sequence[str]) -> bool:
    """Whether a request whose ``Host`` header is ``header`` may be served."""
    if ANY_HOST in patterns:
        return True
    parsed = split_host(header) if header is not None else None
    if parsed is None:
        return False
    name = parsed[0]
    return any(
        name.endswith(pattern[1:]) if pattern.startswith("*.") else name == pattern
        for pattern in patterns
    )


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (``localhost``, ``127.0.0.1``,
    ``::1``); ``0.0.0.0`` and every other address are reachable from elsewhere."""
    name = host.strip().lower().removeprefix("[").removesuffix("]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def effective_allowed_hosts(host_bound: str, configured: Sequence[str] | None) -> tuple[str, ...]:
    """The Host patterns a server bound to ``host_bound`` answers to.

    Configured patterns always win. Unconfigured, a server bound to a loopback address answers
    to the loopback names only (a page elsewhere cannot reach it under a name of its own), and
    a server bound to any other address answers to any Host: in a container or a cluster it is
    called by a service name, a pod IP or a load balancer's name that the settings cannot know,
    and it is reachable from the network anyway, so authentication guards it rather than the
    Host header.
    """
    if configured is not None:
        return tuple(dict.fromkeys(host_pattern(entry) for entry in configured))
    if is_loopback(host_bound):
        return tuple(dict.fromkeys(host_pattern(entry) for entry in LOOPBACK_HOSTS))
    return (ANY_HOST,)


def _ipv6(text: str) -> str | None:
    """``text`` as a compressed IPv6 address (``::1``), or None."""
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        return None
