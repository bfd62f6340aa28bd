"""A walk over every route of the served OpenAPI description, as one tenant, aimed at the
objects of another.

Each route gets an :class:`Expect`: one or more :class:`Probe` s, each a request and the status
it must get. Engine routes build their request from the operation's own example (or, when the
example needs objects of its own, from the path parameters alone), with the path parameters
filled with the other tenant's ids and chosen fields set; other routes send a given JSON body.
Whatever the status, no answer may name a secret of the other tenant that the request did not
itself carry (:func:`leaked`), and a 404 must read exactly as the 404 of ids nobody has.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import msgspec
from litestar import Litestar
from litestar.routes import WebSocketRoute

from aiplatform.api.ids import path_segment
from aiplatform.engines.base import Engine, ExampleContext, Operation, build_request
from aiplatform.forms import encode_form

__all__ = [
    "MADE_UP_ID",
    "Expect",
    "Owned",
    "Probe",
    "Walk",
    "app_routes",
    "document_routes",
    "leaked",
    "websocket_session",
]

#: The id a path gets where the other tenant owns nothing of that kind.
MADE_UP_ID = "no-such-object-0000"
_METHODS = ("get", "put", "post", "patch", "delete")
NOT_FOUND = 404


@dataclass(frozen=True, slots=True)
class Owned:
    """What a tenant made through the API: the ids each path parameter takes, and every string
    another tenant must never be shown."""

    #: Path parameter name -> the tenant's ids of that kind (each one is tried).
    ids: Mapping[str, Sequence[str]]
    #: Names, ids and contents that only the owner may see.
    secrets: frozenset[str]
    #: Anything else the probes' requests are built from (an embedding, a dataset id).
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        if name in self.extra:
            return self.extra[name]
        return self.ids[name][0]


Fields = Callable[[Owned], Mapping[str, Any]]
Ids = Callable[[Owned], Mapping[str, Sequence[str]]]


def _no_fields(_: Owned) -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """One request of a route and the status the caller must get."""

    status: tuple[int, ...]
    #: Engine routes: request fields to set (a dotted name reaches into a nested struct).
    fields: Fields = _no_fields
    #: Path parameters whose ids are not the defaults of their name (``job_id`` of a RAG
    #: ingest job rather than of an analytics job).
    ids: Ids | None = None
    #: Other routes: the JSON body (None: no body).
    body: Callable[[Owned], Any] | None = None
    #: Sent by the owner too, whose answer must succeed and name one of their secrets not
    #: in the request: the probe can see what it looks for, and the caller's refusal is
    #: about who asks, not a malformed request.
    control: bool = False
    #: Runs after every other probe: it makes the caller an object (of the same name as one
    #: of the owner's), which later probes would otherwise find.
    last: bool = False


@dataclass(frozen=True, slots=True)
class Expect:
    """What a route must do for a caller aimed at another tenant's objects."""

    probes: tuple[Probe, ...]
    why: str


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    url: str
    content: bytes | None
    headers: Mapping[str, str]

    def sent(self) -> str:
        """Everything the request carried, as text (what an answer may echo)."""
        return self.url + (self.content or b"").decode("latin-1")


def document_routes(document: Mapping[str, Any]) -> list[str]:
    """``"METHOD /path"`` of every operation of an OpenAPI document."""
    return [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in _METHODS
    ]


def app_routes(app: Litestar) -> list[str]:
    """``"METHOD /path"`` of every route the app serves (``WS`` for a WebSocket), path
    parameters spelled as OpenAPI spells them; HEAD and OPTIONS left out."""
    found = []
    for route in app.routes:
        path = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)
        if isinstance(route, WebSocketRoute):
            found.append(f"WS {path}")
            continue
        methods = set(getattr(route, "methods", ())) - {"HEAD", "OPTIONS"}
        found.extend(f"{method} {path}" for method in sorted(methods))
    return found


async def websocket_session(
    app: Litestar,
    path: str,
    headers: Mapping[str, str],
    sent: Sequence[bytes | str],
    until: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """The messages a WebSocket client sending ``sent`` (then waiting) receives, up to and with
    the server's close, or until a message the client leaves after (``until``); the app called
    in this event loop, whose engines it shares."""
    incoming: list[dict[str, Any]] = [{"type": "websocket.connect"}]
    incoming += [
        {"type": "websocket.receive", "bytes": m}
        if isinstance(m, bytes)
        else {"type": "websocket.receive", "text": m}
        for m in sent
    ]
    received: list[dict[str, Any]] = []
    closed = anyio.Event()
    path, _, query = path.partition("?")
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "http_version": "1.1",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"127.0.0.1")]
        + [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "subprotocols": [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
        "extensions": {},
    }

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await closed.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        received.append(message)
        if message["type"] == "websocket.close" or (until is not None and until(message)):
            closed.set()

    with anyio.fail_after(30):
        await app(scope, receive, send)  # type: ignore[arg-type]
    return received


def leaked(secrets: Iterable[str], answer: str, sent: str) -> list[str]:
    """The secrets an answer names that its request did not carry."""
    return sorted(secret for secret in secrets if secret in answer and secret not in sent)


class Walk:
    """Sends every probe of a table as ``caller``; collects what went wrong instead of
    stopping at the first."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        engines: Mapping[str, Engine],
        target: Owned,
        *,
        caller: Mapping[str, str],
        owner: Mapping[str, str],
    ) -> None:
        self._client = client
        self._operations = {
            f"{op.method} {op.path}": op
            for engine in engines.values()
            for op in engine.kind.operations
        }
        self._target = target
        self._caller = caller
        self._owner = owner
        self.failures: list[str] = []
        self.sent = 0

    async def run(self, table: Mapping[str, Expect]) -> None:
        """Every probe of ``table``: first those that leave nothing behind, then the rest."""
        steps = [(route, probe) for route, expect in table.items() for probe in expect.probes]
        for route, probe in sorted(steps, key=lambda step: step[1].last):
            for call in self._calls(route, probe):
                await self._check(call, probe)

    async def _check(self, call: Call, probe: Probe) -> None:
        if probe.control:
            await self._check_control(call)
        answer = await self._send(call, self._caller)
        self.sent += 1
        where = f"{call.method} {call.url}"
        if answer.status_code not in probe.status:
            self.failures.append(
                f"{where}: {answer.status_code}, expected {probe.status}: {answer.text[:300]}"
            )
        names = leaked(self._target.secrets, answer.text, call.sent())
        if names:
            self.failures.append(f"{where}: the answer names {names}: {answer.text[:300]}")
        if answer.status_code == NOT_FOUND:
            await self._check_unknowable(call, answer)

    async def _check_unknowable(self, call: Call, answer: httpx.Response) -> None:
        """A refusal must read exactly as the refusal of ids that nobody has: else it tells
        the caller that the other tenant's object exists."""
        ghost, swaps = _ghost(call, self._target.secrets)
        other = await self._send(ghost, self._caller)
        text = other.text
        for made_up, real in swaps:
            text = text.replace(made_up, real)
        if other.status_code != answer.status_code or text != answer.text:
            self.failures.append(
                f"{call.method} {call.url}: {answer.status_code} {answer.text[:200]}, but for "
                f"ids nobody has: {other.status_code} {other.text[:200]}"
            )

    async def _check_control(self, call: Call) -> None:
        answer = await self._send(call, self._owner)
        where = f"control {call.method} {call.url}"
        if not answer.is_success:
            self.failures.append(
                f"{where}: the owner got {answer.status_code}: {answer.text[:300]}"
            )
        elif not leaked(self._target.secrets, answer.text, call.sent()):
            self.failures.append(f"{where}: the owner's answer names none of their objects")

    async def _send(self, call: Call, credential: Mapping[str, str]) -> httpx.Response:
        return await self._client.request(
            call.method,
            call.url,
            content=call.content,
            headers={**call.headers, **credential},
        )

    def _calls(self, route: str, probe: Probe) -> list[Call]:
        """One call per combination of the target's ids for the route's path parameters."""
        path = route.split(" ", 1)[1]
        names = [segment[1:-1] for segment in path.split("/") if segment.startswith("{")]
        ids = {**self._target.ids, **(probe.ids(self._target) if probe.ids else {})}
        choices = [ids.get(name, [MADE_UP_ID]) for name in names]
        calls = []
        for values in itertools.product(*choices):
            fills = dict(zip(names, values, strict=True))
            op = self._operations.get(route)
            if op is not None:
                calls.append(_engine_call(op, fills, probe.fields(self._target)))
            else:
                calls.append(_plain_call(route, fills, probe, self._target))
        return calls


def _ghost(call: Call, secrets: Iterable[str]) -> tuple[Call, list[tuple[str, str]]]:
    """``call`` with each secret it carries replaced by a made-up id, and the swaps made."""
    url, content = call.url, call.content
    swaps: list[tuple[str, str]] = []
    for real in sorted((s for s in secrets if s in call.sent()), key=len, reverse=True):
        made_up = f"{MADE_UP_ID}-{len(swaps)}"
        url = url.replace(real, made_up)
        if content is not None:
            content = content.replace(real.encode(), made_up.encode())
        swaps.append((made_up, real))
    return dataclasses.replace(call, url=url, content=content), swaps


def _plain_call(route: str, fills: Mapping[str, str], probe: Probe, target: Owned) -> Call:
    """A route that is no engine operation: its path filled, the probe's JSON body."""
    method, url = route.split(" ", 1)
    for name, value in fills.items():
        url = url.replace(f"{{{name}}}", path_segment(value))
    if probe.body is None:
        return Call(method, url, None, {})
    content = msgspec.json.encode(probe.body(target))
    return Call(method, url, content, {"content-type": "application/json"})


def _engine_call(
    op: Operation[Any, Any, Any], fills: Mapping[str, str], fields: Mapping[str, Any]
) -> Call:
    """The operation's request with the path filled and ``fields`` set, encoded as the route
    takes it (query string, JSON body or multipart form)."""
    given = {**fills, **fields}
    request = _with_fields(_base_request(op, given), given)
    path = op.path_with(lambda name: path_segment(str(getattr(request, name))))
    if op.body == "query":
        query = {
            key: value
            for key, value in msgspec.to_builtins(request).items()
            if value is not None and key not in op.path_params
        }
        url = f"{path}?{urlencode(query, doseq=True)}" if query else path
        return Call(op.method, url, None, {})
    if op.body == "form":
        content, content_type = encode_form(request)
        return Call(op.method, path, content, {"content-type": content_type})
    body = {
        key: value
        for key, value in msgspec.to_builtins(request).items()
        if key not in op.path_params
    }
    content = msgspec.json.encode(body)
    return Call(op.method, path, content, {"content-type": "application/json"})


def _base_request(op: Operation[Any, Any, Any], given: Mapping[str, Any]) -> Any:
    """The operation's example request; one that is built from what its setup made (an id
    it created) is made from the ``given`` fields (path parameters and fields set) instead."""
    if op.example is not None:
        try:
            return build_request(op.example.request, ExampleContext(model=None))
        except IndexError:  # the example reads the answers of its setup steps
            pass
    return msgspec.convert({k: v for k, v in given.items() if "." not in k}, op.request)


def _with_fields(struct: Any, fields: Mapping[str, Any]) -> Any:
    """``struct`` with ``fields`` set; ``a.b`` sets field ``b`` of field ``a``."""
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for name, value in fields.items():
        head, dot, rest = name.partition(".")
        if dot:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[name] = value
    for head, inner in nested.items():
        direct[head] = _with_fields(getattr(struct, head), inner)
    return msgspec.structs.replace(struct, **direct)
