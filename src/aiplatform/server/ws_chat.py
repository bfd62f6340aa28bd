"""Chat over a WebSocket: ``/v1/ws/chat``, several streamed generations on one connection.

The client sends JSON text messages (:mod:`aiplatform.api.ws_chat`):

- ``{"type": "chat", "id": "<its name for the generation>", "request": {...}}``: ``request`` is
  the body of ``POST /v1/chat/completions``, decoded as strictly, and always streamed;
- ``{"type": "cancel", "id": ...}``: stop that generation now (the engine stream is closed, so
  the model stops generating and frees its slot, on a pod too);
- ``{"type": "ping"}``: answered with ``{"type": "pong"}``.

The server answers with ``chunk`` events (``{"type": "chunk", "id", "chunk"}``, the
``ChatCompletionChunk`` the SSE stream of the same request carries), and each generation ends
with exactly one of ``{"type": "done", "id", "usage"}``, ``{"type": "error", "id", "error"}``
(OpenAI's error body) or ``{"type": "cancelled", "id"}``, after which its ``id`` is free again.
A message that starts nothing (unreadable, or a ``chat`` reusing the ``id`` of a running
generation) gets ``{"type": "error", "error"}`` without an ``id``: an error naming a generation
is always its last event.

Generations run at once, each as its own task, at most :data:`MAX_GENERATIONS` per connection
(one more is refused with ``too_many_generations``, a 429-like error). A bad request, a rate
limit, or an engine's 4xx costs that generation only. Every event goes out through one buffer
of :data:`OUTBOX_MESSAGES`: when a client reads slower than the model writes, the buffer fills,
the generations wait for room and stop pulling their engine streams (over a forwarded engine,
the pod's SSE stream stops being read in turn); a client that takes no message for
:data:`SEND_TIMEOUT_S` is dropped (close 1008).

Close codes: 1000 the client closed; 1008 the caller may not use the LLM engine (before the
socket is accepted; a missing or bad token is refused the same way by the identity middleware),
or the client stopped reading; 1009 a message larger than the server's ``max_body_bytes``;
1011 an engine failed (a 5xx other than 503) and 1013 an engine is unavailable (a 503: loading,
or a pod unreachable), each after the failed generation's ``error`` event: the generations
still running stop without events of their own. WebSocket-level pings are answered by the
server (uvicorn), which also pings the client every 20 s and drops one that does not answer.

Each generation is charged against the rate limits (``[limits]``) as ``POST
/v1/chat/completions`` is: a request, and the estimated tokens settled against the ``usage``
the engine reports. Generations go through the LLM engine's protocol, so they stream from a
pod when ``[engines.llm] url`` is set.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.handlers import WebsocketRouteHandler

from aiplatform.api.chat import ChatCompletionChunk, ChatCompletionRequest, StreamOptions, Usage
from aiplatform.api.ws_chat import (
    MAX_GENERATION_ID_CHARS,
    CancelledEvent,
    ChatCancel,
    ChatStart,
    ChunkEvent,
    ClientMessage,
    DoneEvent,
    ErrorEvent,
    Ping,
    PongEvent,
    ServerEvent,
)
from aiplatform.auth.identity import current_identity
from aiplatform.auth.scope import check_operation_access
from aiplatform.engines.base import Engine
from aiplatform.engines.llm.operations import CHAT
from aiplatform.errors import (
    AIPlatformError,
    AuthenticationError,
    InternalError,
    InvalidRequestError,
    RateLimitError,
    ServiceUnavailableError,
)
from aiplatform.forms import param_of
from aiplatform.limits.charges import charges_for, owners_of, settle
from aiplatform.limits.estimate import CHAT_PATH, estimate_tokens
from aiplatform.limits.headers import refusal, too_large
from aiplatform.limits.limiter import Charge, Limiter
from aiplatform.limits.middleware import RateLimits
from aiplatform.server.errors import error_body
from aiplatform.server.identity_middleware import reauthenticate
from aiplatform.server.strict import decode_strict
from aiplatform.server.websocket_common import (
    CLOSE_ENGINE_FAILED,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN_LATER,
    chosen_subprotocol,
)
from aiplatform.tenant import current_tenant

__all__ = [
    "CLOSE_ENGINE_FAILED",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "CLOSE_TRY_AGAIN_LATER",
    "MAX_GENERATIONS",
    "OUTBOX_MESSAGES",
    "SEND_TIMEOUT_S",
    "ws_chat_routes",
]

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_TOO_BIG = 1009

#: Generations one connection may run at once.
MAX_GENERATIONS = 4
#: Events waiting to be written to the client, over all the connection's generations.
OUTBOX_MESSAGES = 8
#: How long one event may wait for the client to take it before the connection is dropped.
SEND_TIMEOUT_S = 30.0
#: How long closing an engine stream (and the close handshake) may take.
CLOSE_TIMEOUT_S = 5.0

_DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_REASON_BYTES = 120


def ws_chat_routes(
    engines: Mapping[str, Engine],
    *,
    limits: RateLimits | None = None,
    max_message_bytes: int = _DEFAULT_MAX_MESSAGE_BYTES,
) -> list[WebsocketRouteHandler]:
    """``/v1/ws/chat`` when the LLM engine is served; generations are charged against
    ``limits`` (the server's rate-limit middleware, whose limiter they share)."""
    llm = engines.get("llm")
    if llm is None:
        return []
    quota = _Quota(limits)

    @websocket("/v1/ws/chat", name="llm.ws_chat")
    async def chat_socket(socket: WebSocket[Any, Any, Any]) -> None:
        try:
            check_operation_access(llm.kind.name, admin_only=CHAT.admin_only)
        except AIPlatformError as exc:
            await socket.close(code=CLOSE_POLICY, reason=_reason(exc.message))
            return
        await socket.accept(subprotocols=chosen_subprotocol(socket))
        await _Session(socket, llm, quota, max_message_bytes).run()

    return [chat_socket]


def _reason(text: str) -> str:
    """A close reason: at most 123 bytes of UTF-8 fit in a close frame."""
    return text.encode()[:_REASON_BYTES].decode(errors="ignore")


# -- rate limits -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Taken:
    """What a generation was charged up front: its token charges and their estimate."""

    tokens: Sequence[Charge] = ()
    estimate: int = 0


class _Quota:
    """Each generation charged as ``POST /v1/chat/completions`` is by the rate-limit
    middleware (which lets WebSockets through): one request, and its estimated tokens, later
    settled against the usage it reports."""

    def __init__(self, limits: RateLimits | None) -> None:
        self._limits = limits
        self._limiter: Limiter | None = limits.limiter if limits is not None else None

    async def take(self, request: ChatCompletionRequest) -> _Taken:
        """Charge ``request``; a 429 when over a limit (or asking more than one allows)."""
        if self._limits is None or self._limiter is None:
            return _Taken()
        owners = owners_of(current_identity(), current_tenant())
        estimate = estimate_tokens(msgspec.to_builtins(request), CHAT_PATH)
        charges = charges_for(owners, self._limits.settings, estimate, counts_tokens=True)
        if not charges:
            return _Taken()
        oversized = next((charge for charge in charges if charge.amount > charge.limit), None)
        if oversized is not None:
            raise too_large(oversized)
        verdict = await self._limiter.acquire(charges)
        if not verdict.allowed:
            raise refusal(charges, verdict)
        return _Taken([charge for charge in charges if charge.unit == "tokens"], estimate)

    async def settle(self, taken: _Taken, used: int) -> None:
        """Charge (or refund) the difference between ``used`` and the estimate; shielded, so a
        cancelled generation is settled too."""
        if self._limiter is not None:
            await settle(
                self._limiter, taken.tokens, used - taken.estimate, what="a WebSocket chat"
            )


# -- one connection --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ending:
    """How a connection ends: the close code (None: the client has gone), and whether the
    events already queued are written first."""

    code: int | None
    reason: str = ""
    flush: bool = False


@dataclass(slots=True)
class _Progress:
    """What one generation has sent so far."""

    chunks: int = 0
    usage: Usage | None = None


class _EngineFailedError(Exception):
    """A generation's engine failed (a 5xx): the connection ends after its error event."""

    def __init__(self, failure: AIPlatformError) -> None:
        super().__init__(failure.message)
        self.failure = failure


_client_messages = msgspec.json.Decoder(ClientMessage)
_events = msgspec.json.Encoder()


class _Session:
    """One connection: a reader dispatching messages, a task per generation, and a writer
    draining the bounded outbox all of them send through."""

    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        engine: Engine,
        quota: _Quota,
        max_message_bytes: int,
    ) -> None:
        self._socket = socket
        self._engine = engine
        self._quota = quota
        self._max_message_bytes = max_message_bytes
        self._outbox, self._outgoing = anyio.create_memory_object_stream[str](OUTBOX_MESSAGES)
        #: The running generations by id, each with the scope that cancels it.
        self._live: dict[str, anyio.CancelScope] = {}
        self._ending: _Ending | None = None
        self._ended = anyio.Event()

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as outer:
                outer.start_soon(self._write_loop)
                async with anyio.create_task_group() as work:
                    work.start_soon(self._read_loop, work)
                    await self._ended.wait()
                    work.cancel_scope.cancel()  # the reader, and every generation's stream
                if self._ending is not None and self._ending.flush:
                    self._outbox.close()  # the writer sends what is queued, then returns
                else:
                    outer.cancel_scope.cancel()
        finally:
            self._outbox.close()
            self._outgoing.close()
        ending = self._ending
        if ending is not None and ending.code is not None:
            with anyio.move_on_after(CLOSE_TIMEOUT_S):  # a client not reading blocks it too
                with suppress(WebSocketDisconnect, OSError):
                    await self._socket.close(code=ending.code, reason=_reason(ending.reason))

    def _end(self, ending: _Ending) -> None:
        """End the connection; the first reason given is the one kept."""
        if self._ending is None:
            self._ending = ending
            self._ended.set()

    async def _emit(self, event: ServerEvent) -> None:
        """Queue ``event``; waits while the outbox is full (the client reads slowly)."""
        await self._outbox.send(_events.encode(event).decode())

    async def _write_loop(self) -> None:
        async for text in self._outgoing:
            with anyio.move_on_after(SEND_TIMEOUT_S) as waited:
                try:
                    await self._socket.send_text(text)
                except (WebSocketDisconnect, OSError):  # the client has gone
                    self._end(_Ending(None))
                    return
            if waited.cancelled_caught:
                self._end(_Ending(CLOSE_POLICY, f"client took no message for {SEND_TIMEOUT_S:g}s"))
                return

    # -- reading -------------------------------------------------------------------------------

    async def _read_loop(self, work: anyio.abc.TaskGroup) -> None:
        while True:
            try:
                message = await self._socket.receive()
            except WebSocketDisconnect:
                self._end(_Ending(None))
                return
            if message["type"] == "websocket.disconnect":
                self._end(_Ending(None))
                return
            text = message.get("text")
            if not isinstance(text, str):
                await self._refuse(None, InvalidRequestError("Send JSON text messages."))
                continue
            if _too_big(text, self._max_message_bytes):
                await self._refuse(
                    None,
                    InvalidRequestError(
                        f"A message may hold at most {self._max_message_bytes} bytes.",
                        code="message_too_big",
                    ),
                )
                self._end(_Ending(CLOSE_TOO_BIG, "message too big", flush=True))
                return
            await self._dispatch(text, work)

    async def _dispatch(self, text: str, work: anyio.abc.TaskGroup) -> None:
        try:
            message = _client_messages.decode(text)
        except msgspec.ValidationError as exc:
            error = InvalidRequestError(f"Invalid message: {exc}", param=param_of(str(exc)))
            ident = _id_in(text)
            await self._refuse(ident if ident not in self._live else None, error)
            return
        except (msgspec.DecodeError, RecursionError):
            await self._refuse(None, InvalidRequestError("A message must be a JSON object."))
            return
        if isinstance(message, ChatStart):
            await self._start(message, work)
        elif isinstance(message, ChatCancel):
            await self._cancel(message.id)
        elif isinstance(message, Ping):
            await self._emit(PongEvent())

    async def _refuse(self, ident: str | None, exc: AIPlatformError) -> None:
        await self._emit(ErrorEvent(id=ident, error=error_body(exc).error))

    async def _start(self, message: ChatStart, work: anyio.abc.TaskGroup) -> None:
        ident = message.id
        if ident in self._live:
            await self._refuse(
                None,  # an error naming a generation ends it, and this one runs on
                InvalidRequestError(
                    f"A generation with id '{ident}' is running; give each its own id.",
                    param="id",
                    code="duplicate_id",
                ),
            )
            return
        if len(self._live) >= MAX_GENERATIONS:
            await self._refuse(
                ident,
                RateLimitError(
                    f"{MAX_GENERATIONS} generations are already running on this connection; "
                    "wait for one to end.",
                    code="too_many_generations",
                ),
            )
            return
        try:
            await reauthenticate(self._socket.scope)
        except AuthenticationError as exc:  # revoked, logged out or expired since the handshake
            await self._refuse(ident, exc)
            self._end(_Ending(CLOSE_POLICY, exc.message, flush=True))
            return
        try:
            request = decode_strict(message.request, ChatCompletionRequest)
        except InvalidRequestError as exc:
            await self._refuse(ident, exc)
            return
        scope = anyio.CancelScope()
        self._live[ident] = scope
        work.start_soon(self._generate, ident, request, scope)

    async def _cancel(self, ident: str) -> None:
        scope = self._live.get(ident)
        if scope is None:
            await self._refuse(
                ident,
                InvalidRequestError(
                    f"No generation with id '{ident}' is running.",
                    param="id",
                    code="generation_not_active",
                ),
            )
            return
        scope.cancel()  # its task sends ``cancelled``

    # -- generating ----------------------------------------------------------------------------

    async def _generate(
        self, ident: str, request: ChatCompletionRequest, scope: anyio.CancelScope
    ) -> None:
        """Run one generation to its last event: ``done``, ``error`` or ``cancelled``."""
        failure: AIPlatformError | None = None
        outcome: ServerEvent = CancelledEvent(id=ident)
        try:
            with scope:
                try:
                    outcome = await self._converse(ident, request)
                except _EngineFailedError as exc:
                    failure = exc.failure
                    outcome = ErrorEvent(id=ident, error=error_body(failure).error)
        finally:
            self._live.pop(ident, None)  # before the last event: the id may be used again
        await self._emit(outcome)
        if failure is not None:
            code = (
                CLOSE_TRY_AGAIN_LATER
                if failure.status_code == ServiceUnavailableError.status_code
                else CLOSE_ENGINE_FAILED
            )
            self._end(_Ending(code, failure.message, flush=True))

    async def _converse(self, ident: str, request: ChatCompletionRequest) -> ServerEvent:
        """Charge the generation, stream it, settle its usage: ``done`` or an ``error``."""
        try:
            taken = await self._quota.take(request)
        except AIPlatformError as exc:
            return ErrorEvent(id=ident, error=error_body(exc).error)
        progress = _Progress()
        try:
            await self._relay(ident, request, progress)
        except AIPlatformError as exc:
            if exc.status_code >= 500:
                raise _EngineFailedError(exc) from exc
            return ErrorEvent(id=ident, error=error_body(exc).error)
        except Exception as exc:
            logger.exception("WebSocket chat: a generation failed")
            failure = InternalError("The generation failed with an internal error; it is logged.")
            raise _EngineFailedError(failure) from exc
        finally:
            await self._quota.settle(taken, _used(taken, progress))
        return DoneEvent(id=ident, usage=progress.usage)

    async def _relay(self, ident: str, request: ChatCompletionRequest, progress: _Progress) -> None:
        """Send the engine's chunks as they come; the stream is closed however this ends, so
        a cancelled generation stops in the engine (or on the pod) at once."""
        wants_usage = request.stream_options is not None and request.stream_options.include_usage
        streamed = msgspec.structs.replace(
            request, stream=True, stream_options=StreamOptions(include_usage=True)
        )
        stream = self._engine.stream(CHAT, streamed)
        try:
            async for chunk in stream:
                shown: ChatCompletionChunk | None = chunk
                if chunk.usage is not None:
                    progress.usage = chunk.usage
                    if not wants_usage:  # asked for here, to report it in ``done``
                        shown = _without_usage(chunk)
                if shown is not None:
                    await self._emit(ChunkEvent(id=ident, chunk=shown))
                    progress.chunks += 1
        finally:
            await _close(stream)


def _without_usage(chunk: ChatCompletionChunk) -> ChatCompletionChunk | None:
    """``chunk`` as a client that did not ask for usage sees it: the usage-only chunk dropped,
    usage taken off a chunk that also carries choices."""
    return msgspec.structs.replace(chunk, usage=None) if chunk.choices else None


def _used(taken: _Taken, progress: _Progress) -> int:
    """Tokens a generation is settled at: its reported usage; without one, the estimate when it
    sent anything (stopped part way), nothing when it failed before its first chunk."""
    if progress.usage is not None:
        return progress.usage.total_tokens
    return taken.estimate if progress.chunks else 0


async def _close(stream: AsyncIterator[Any]) -> None:
    """Close an engine stream (an async generator), even while the task is being cancelled."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with anyio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
            await aclose()


def _too_big(text: str, limit: int) -> bool:
    """Whether ``text`` is over ``limit`` bytes of UTF-8 (encoded only when it might be)."""
    if len(text) > limit:
        return True
    return len(text) * 4 > limit and len(text.encode()) > limit


class _MaybeIdentified(msgspec.Struct):
    id: Any = None


def _id_in(text: str) -> str | None:
    """The ``id`` of a message refused as invalid, when it has a usable one: its error event
    then names the generation the client meant."""
    try:
        ident = msgspec.json.decode(text, type=_MaybeIdentified).id
    except (msgspec.MsgspecError, RecursionError):
        return None
    return ident if isinstance(ident, str) and 0 < len(ident) <= MAX_GENERATION_ID_CHARS else None
