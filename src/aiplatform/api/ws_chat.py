"""The messages of WebSocket chat (``/v1/ws/chat``): JSON text messages told apart by ``type``.

The client starts a generation with ``chat`` (its ``request`` is the body of ``POST
/v1/chat/completions``), stops one with ``cancel`` and checks the connection with ``ping``. The
server streams each generation as ``chunk`` events (the ``ChatCompletionChunk`` an SSE stream
carries) ending in one of ``done``, ``error`` or ``cancelled``, and answers ``ping`` with
``pong``. Every event of a generation carries the ``id`` the client gave it, so several
generations can share one connection.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from aiplatform.api.chat import ChatCompletionChunk, Usage
from aiplatform.api.openai import ErrorBody

__all__ = [
    "MAX_GENERATION_ID_CHARS",
    "CancelledEvent",
    "ChatCancel",
    "ChatStart",
    "ChunkEvent",
    "ClientMessage",
    "DoneEvent",
    "ErrorEvent",
    "GenerationId",
    "Ping",
    "PongEvent",
    "ServerEvent",
]

#: The longest ``id`` a client may give a generation.
MAX_GENERATION_ID_CHARS = 128

#: The client's name for one generation: unique among the connection's running generations.
GenerationId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_GENERATION_ID_CHARS)]


# -- client to server ------------------------------------------------------------------------


class ChatStart(msgspec.Struct, kw_only=True, tag_field="type", tag="chat"):
    """Start a generation. ``request`` is decoded as ``POST /v1/chat/completions`` decodes its
    body (strictly); it always streams, whatever its ``stream`` says."""

    id: GenerationId
    request: msgspec.Raw


class ChatCancel(msgspec.Struct, kw_only=True, tag_field="type", tag="cancel"):
    """Stop a running generation now: the model stops generating it."""

    id: GenerationId


class Ping(msgspec.Struct, kw_only=True, tag_field="type", tag="ping"):
    """Ask for a ``pong`` (an application-level check; WebSocket pings are answered too)."""


ClientMessage = ChatStart | ChatCancel | Ping


# -- server to client ------------------------------------------------------------------------


class ChunkEvent(msgspec.Struct, kw_only=True, tag_field="type", tag="chunk"):
    """One chunk of generation ``id``, as the SSE stream of the same request carries it."""

    id: str
    chunk: ChatCompletionChunk


class DoneEvent(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="type", tag="done"):
    """Generation ``id`` ended; ``usage`` is what it used, when the engine reported it."""

    id: str
    usage: Usage | None = None


class ErrorEvent(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="type", tag="error"):
    """OpenAI's error body. With an ``id`` it is that generation's last event (it failed, or
    was refused before it started); without one it refuses a message that started nothing: one
    that cannot be read, or a ``chat`` reusing the id of a generation still running."""

    error: ErrorBody
    id: str | None = None


class CancelledEvent(msgspec.Struct, kw_only=True, tag_field="type", tag="cancelled"):
    """Generation ``id`` was stopped at the client's ``cancel``; nothing more comes for it."""

    id: str


class PongEvent(msgspec.Struct, kw_only=True, tag_field="type", tag="pong"):
    """The answer to ``ping``."""


ServerEvent = ChunkEvent | DoneEvent | ErrorEvent | CancelledEvent | PongEvent
