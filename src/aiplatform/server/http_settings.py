"""Settings of what browsers may do: the ``Host`` names served, the origins allowed to call.

See ``docs/security.md``, "Browsers". Lists come from the environment as JSON, e.g.
``AIPLATFORM_HTTP__CORS_ORIGINS='["https://app.example.com"]'``.
"""

from __future__ import annotations

import msgspec

from aiplatform.server.guard.hosts import host_pattern
from aiplatform.server.guard.origins import CorsPolicy

__all__ = ["HttpSettings"]


class HttpSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: ``Host`` names the server answers to (any port); others get 400 ``host_not_allowed``.
    #: Entries: a name, an address, ``*.example.com`` (names below it) or ``*`` (any). Unset:
    #: ``localhost``, ``127.0.0.1`` and ``::1`` when ``server.host`` is a loopback address, any
    #: name otherwise (a container's ``0.0.0.0``: callers use names the server cannot know).
    allowed_hosts: list[str] | None = None
    #: Origins (``https://app.example.com``, or ``*``) whose pages may call the server from a
    #: browser: preflights are answered and responses carry ``Access-Control-Allow-Origin``.
    #: Empty: no CORS header at all, and other sites' pages cannot write (403).
    cors_origins: list[str] = msgspec.field(default_factory=list)
    #: Lets the pages of ``cors_origins`` send cookies and HTTP authentication
    #: (``Access-Control-Allow-Credentials``); needs the origins listed, not ``*``.
    cors_allow_credentials: bool = False

    def __post_init__(self) -> None:
        if self.allowed_hosts is not None:
            if not self.allowed_hosts:
                raise ValueError("allowed_hosts is empty: no request could be served")
            for entry in self.allowed_hosts:
                host_pattern(entry)
        CorsPolicy.of(self.cors_origins, credentials=self.cors_allow_credentials)

    def cors(self) -> CorsPolicy:
        """The CORS policy these settings describe."""
        return CorsPolicy.of(self.cors_origins, credentials=self.cors_allow_credentials)
