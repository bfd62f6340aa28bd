"""The engine contract: operations declared once, and the protocol both adapters implement.

An engine kind lists its :class:`Operation` s: name, HTTP method and path, request type,
response type and, for operations that can stream, the chunk type. From that one table come the
server's routes, the in-process call (:class:`~aiplatform.engines.local.LocalEngine`) and the
HTTP call (:class:`~aiplatform.remote.client.RemoteEngine`). Callers hold an :class:`Engine` and
never learn which of the two they have.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, Self, TypeAlias, TypeVar

import msgspec

if TYPE_CHECKING:
    from aiplatform.api.health import EngineStatus
    from aiplatform.api.openai import ModelCard
    from aiplatform.engines.settings import EngineSettings

__all__ = [
    "NO_SECRETS",
    "BodyForm",
    "Engine",
    "EngineKind",
    "EngineMode",
    "Example",
    "ExampleContext",
    "ExampleRequest",
    "HttpMethod",
    "Needs",
    "NoChunk",
    "Operation",
    "Secrets",
    "build_request",
]

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
EngineMode = Literal["local", "remote"]
#: How a request travels: a JSON body, a multipart form (file uploads), or the query string.
BodyForm = Literal["json", "form", "query"]

_PATH_PARAM = re.compile(r"{(\w+)}")

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)
Chunk = TypeVar("Chunk", bound=msgspec.Struct)
S = TypeVar("S", bound="EngineSettings")


#: The engines a kind's in-process engine calls, by kind name (see ``EngineKind.needs``).
Needs = Mapping[str, "Engine"]


class NoChunk(msgspec.Struct):
    """Chunk type of an operation that never streams."""


@dataclass(frozen=True, slots=True)
class ExampleContext:
    """What an example's request may be built from when it cannot be written down as is."""

    #: The model the engine lists first (None when it lists none).
    model: str | None
    #: The answers to the example's ``setup`` steps, in order (ids of what they created).
    answers: tuple[Any, ...] = ()


#: A request as an example gives it: written down, or built from an :class:`ExampleContext`.
ExampleRequest: TypeAlias = "Req | Callable[[ExampleContext], Req]"


@dataclass(frozen=True, slots=True, kw_only=True)
class Example(Generic[Req, Resp]):
    """A request of an operation that the kind's fake backend answers.

    It documents the operation, and the contract suite runs it (and every other operation's)
    in-process, through an ASGI pod and through a real pod, asserting the same answer. A request
    that needs something to exist first (a collection, an enrolled speaker) lists the steps
    that create it in ``setup``; each step's request, and the example's own, may be a function
    of the answers before it. Examples of one kind run in the order the kind declares its
    operations, on one engine, so each creates what it uses under names of its own.
    """

    request: ExampleRequest[Req]
    #: ``(operation, request)`` steps run first, in order.
    setup: tuple[tuple[Operation[Any, Any, Any], ExampleRequest[Any]], ...] = ()
    #: For work that finishes in the background: the call is repeated (within a deadline)
    #: until its answer satisfies this.
    until: Callable[[Resp], bool] | None = None


def build_request(request: ExampleRequest[Req], context: ExampleContext) -> Req:
    """An example's request for ``context``."""
    if isinstance(request, msgspec.Struct):
        return request
    return request(context)


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation(Generic[Req, Resp, Chunk]):
    """One call an engine serves, declared once for routes, local calls and HTTP calls.

    For an operation with a ``chunk`` type, the request's ``stream_field`` (OpenAI's ``stream``)
    picks between one response and a stream of chunks on the same path, as OpenAI does.

    ``{name}`` segments of ``path`` are filled from the request's fields of that name. An
    operation whose clients pick a response format (OpenAI's ``response_format=srt``) declares
    ``render``, which the route applies to the structured response, and ``upstream_request``,
    with which the remote adapter asks its upstream for the structured form.
    """

    name: str
    method: HttpMethod
    path: str
    request: type[Req]
    response: type[Resp]
    chunk: type[Chunk] | None = None
    stream_field: str = "stream"
    summary: str = ""
    tags: tuple[str, ...] = field(default=())
    #: Changes what every tenant shares (a model loaded or unloaded): for admins only (403
    #: ``admin_only`` to others; a pod takes it from its gateway, which checked).
    admin_only: bool = False
    #: Take the request as ``multipart/form-data`` (fields of type ``FilePart`` are uploads).
    form: bool = False
    #: The route's rendering of a response: ``(body, media type)``, or None for JSON.
    render: Callable[[Req, Resp], tuple[bytes, str] | None] | None = None
    #: The request as the remote adapter sends it upstream.
    upstream_request: Callable[[Req], Req] | None = None
    #: What is wrong with an upstream's answer to a request, or None; the remote adapter
    #: refuses a wrong answer with 502 (say, fewer embeddings than inputs).
    check_upstream: Callable[[Req, Resp], str | None] | None = None
    #: A request the fake backend answers (documentation, and the contract suite's input).
    example: Example[Req, Resp] | None = None
    #: The status of a successful answer (202 for work accepted to run in the background).
    status_code: int = 200
    #: Which chunks report progress: their number and values depend on timing, so the
    #: contract suite compares a stream without them.
    progress_chunk: Callable[[Chunk], bool] | None = None

    @property
    def body(self) -> BodyForm:
        """POST, PUT and PATCH carry the request as a JSON body (or a form); others as query
        parameters (whose request types hold scalar fields)."""
        if self.method not in ("POST", "PUT", "PATCH"):
            return "query"
        return "form" if self.form else "json"

    @property
    def path_params(self) -> tuple[str, ...]:
        """Names of the request fields that fill ``{name}`` segments of the path."""
        return tuple(_PATH_PARAM.findall(self.path))

    def path_with(self, fill: Callable[[str], str]) -> str:
        """The path with each ``{name}`` segment replaced by ``fill(name)``."""
        return _PATH_PARAM.sub(lambda match: fill(match[1]), self.path)

    def wants_stream(self, request: Req) -> bool:
        """Whether this request asks for the streamed form of the operation."""
        return self.chunk is not None and bool(getattr(request, self.stream_field, False))


class Engine(Protocol):
    """What callers hold: the same API whether the engine runs in-process or behind a URL.

    An engine is an async context manager: entering it starts whatever it needs (loading a model
    in the background, opening a connection pool) and leaving it releases everything.
    """

    @property
    def kind(self) -> EngineKind[Any]: ...

    @property
    def mode(self) -> EngineMode: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def status(self) -> EngineStatus:
        """Readiness: loaded (local) or reachable (remote), with a reason when not."""
        ...

    async def list_models(self) -> list[ModelCard]: ...

    async def invoke(self, op: Operation[Req, Resp, Any], request: Req) -> Resp: ...

    def stream(self, op: Operation[Req, Any, Chunk], request: Req) -> AsyncIterator[Chunk]: ...


@dataclass(frozen=True, slots=True)
class Secrets:
    """What the server's settings hand to engines that keep databases or call pods."""

    #: The key their databases are encrypted with (None: plain SQLite).
    storage_key: str | None = None
    #: The service credential they present to the pods they call themselves.
    service_token: str | None = None


#: A development server's: plain databases, no service credential.
NO_SECRETS = Secrets()


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineKind(Generic[S]):
    """A kind of engine: its name, its operation table, its settings and its local factory.

    ``build_local`` imports the heavy backend itself, so that declaring a kind (and mounting its
    routes, or forwarding it) never imports torch or any model library. It receives the engines
    that :meth:`needs` names for its settings (the RAG engine embeds through the embeddings
    engine), each in-process or remote as configured.
    """

    name: str
    summary: str
    operations: tuple[Operation[Any, Any, Any], ...]
    settings_type: type[S]
    build_local: Callable[[S, Needs], Engine]
    #: For a kind whose in-process engine keeps databases or calls pods of its own: builds it
    #: as ``build_local`` does, given also the server's :class:`Secrets`.
    build_with_secrets: Callable[[S, Needs, Secrets], Engine] | None = None
    #: Every kind whose engine this kind's in-process engine may call. The registry orders
    #: kinds by it (each after those it uses).
    uses: tuple[str, ...] = ()
    #: Which of ``uses`` a given configuration calls; unset: all of them.
    needs_when: Callable[[S], tuple[str, ...]] | None = None
    #: Kinds whose engines this kind's in-process engine calls when the server has them (one
    #: it serves, or one its section forwards to a ``url``), and does without otherwise (the
    #: operations that need one answer 503). Never built for it in-process, unlike ``uses``.
    optional_uses: tuple[str, ...] = ()

    def needs(self, settings: S) -> tuple[str, ...]:
        """The kinds whose engines ``build_local`` needs for ``settings``."""
        if self.needs_when is None:
            return self.uses
        needed = self.needs_when(settings)
        undeclared = set(needed) - set(self.uses)
        if undeclared:
            raise ValueError(
                f"kind {self.name!r} needs {', '.join(sorted(undeclared))} but does not declare "
                "it in uses"
            )
        return needed
