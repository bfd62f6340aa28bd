"""What the WebSocket routes share: the close codes they use and the subprotocol they select."""

from __future__ import annotations

from typing import Any

from litestar import WebSocket

__all__ = [
    "CLOSE_ENGINE_FAILED",
    "CLOSE_POLICY",
    "CLOSE_TRY_AGAIN_LATER",
    "SUBPROTOCOL",
    "chosen_subprotocol",
]

CLOSE_POLICY = 1008
CLOSE_ENGINE_FAILED = 1011
CLOSE_TRY_AGAIN_LATER = 1013

#: The subprotocol a browser offers beside ``bearer.<token>`` (a browser cannot set headers on a
#: WebSocket), which the server selects so the handshake completes without echoing the token.
SUBPROTOCOL = "aiplatform"


def chosen_subprotocol(socket: WebSocket[Any, Any, Any]) -> str | None:
    """``aiplatform`` when the client offers it."""
    offered = socket.headers.get("sec-websocket-protocol", "")
    return SUBPROTOCOL if SUBPROTOCOL in (p.strip() for p in offered.split(",")) else None
