"""The contract kit: run any engine in-process, remote through ASGI, and remote over a socket.

The platform's promise is that an engine answers the same wherever it runs. This module is how
its own contract suite checks that, and how a new kind's tests get the same checks in a few
lines::

    from aiplatform.testing import MODES, engine_in_mode, fake_settings

    @pytest.fixture(params=MODES)
    async def engine(request, tmp_path):
        async with engine_in_mode(request.param, "mykind", fake_settings(tmp_path)) as engine:
            yield engine

The three modes:

- ``local``: the kind's in-process engine.
- ``remote-asgi``: a :class:`~aiplatform.remote.client.RemoteEngine` reaching that engine through
  the platform's own app, called in-process over ``httpx.ASGITransport`` (fast, no ports).
- ``remote-socket``: a ``RemoteEngine`` over the network wire (aiohttp) to a real
  ``aiplatform serve --engines KIND`` child process on a loopback port (:class:`ServerProcess`).

The pods of both remote modes run with authentication on, as in a split deployment: ``[auth]
enabled = true`` with a ``service_token`` (:class:`PodAuth`; :data:`POD_AUTH` is made once per
process from random secrets), an admin password of their own so that no generated one is
printed, and their identity data in a temporary folder. The ``RemoteEngine`` the kit builds
presents that service token and sends the tenant it acts for (``x-aiplatform-tenant``), exactly
as a gateway calls its pods; a caller without the token is refused. The in-process pod app of
``remote-asgi`` does not run its lifespan (the caller enters the engine), so its identity
service is not started: it checks the service credential, not API keys or logins.

:func:`run_examples` runs the example every operation declares (``Operation.example``) and
:func:`normalized` strips what legitimately differs between two runs (ids, timestamps), so one
test can compare every operation of a kind across the modes.
"""

from __future__ import annotations

import atexit
import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx
import msgspec
from litestar import Litestar

from aiplatform.auth.settings import AuthSettings
from aiplatform.engines.base import Engine, EngineKind, ExampleContext, Operation, build_request
from aiplatform.engines.registry import ENGINE_KINDS
from aiplatform.engines.settings import EngineSettings
from aiplatform.errors import AIPlatformError
from aiplatform.remote.client import RemoteEngine
from aiplatform.remote.wire import HttpxWire
from aiplatform.server.http_settings import HttpSettings
from aiplatform.settings import Settings

__all__ = [
    "MODES",
    "POD_AUTH",
    "Mode",
    "Outcome",
    "PodAuth",
    "ServerProcess",
    "asgi_client",
    "asgi_pod",
    "asgi_remote",
    "engine_in_mode",
    "fake_settings",
    "free_port",
    "in_mode",
    "normalized",
    "run_example",
    "run_examples",
    "settings_env",
]

Mode = Literal["local", "remote-asgi", "remote-socket"]
MODES: tuple[Mode, ...] = ("local", "remote-asgi", "remote-socket")

# -- settings -----------------------------------------------------------------------------------

#: Fake-backend settings a kind cannot be given by the generic rule of :func:`fake_settings`.
_FAKE_SECTIONS: dict[str, dict[str, Any]] = {
    "llm": {"models": [{"name": "fake-llm", "backend": "fake"}]},
}


def fake_settings(data_dir: str | Path) -> Settings:
    """Every registered kind on its fake backend (deterministic, no weights), keeping what it
    stores under ``data_dir``.

    A kind's section gets ``backend = "fake"`` when its settings accept it, and a folder of
    its own as ``data_dir`` when they have one, so a new kind with a fake backend is covered
    without being named here.
    """
    folder = Path(data_dir)
    sections: dict[str, Any] = {}
    for name, kind in ENGINE_KINDS.items():
        fields = {field.name for field in msgspec.structs.fields(kind.settings_type)}
        section: dict[str, Any] = dict(_FAKE_SECTIONS.get(name, {}))
        if "backend" in fields and "backend" not in section:
            try:
                msgspec.convert({"backend": "fake"}, kind.settings_type)
                section["backend"] = "fake"
            except msgspec.ValidationError:
                pass
        if "data_dir" in fields:
            section["data_dir"] = str(folder / name)
        sections[name] = section
    return msgspec.convert({"engines": sections}, Settings)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives an ``aiplatform serve`` child process ``settings``' engine
    sections (each section as one JSON value)."""
    return {
        f"AIPLATFORM_ENGINES__{name.upper()}": msgspec.json.encode(settings.engine(name)).decode()
        for name in ENGINE_KINDS
    }


# -- the pods' credentials -----------------------------------------------------------------------

#: The settings variable that carries ``[auth] service_token`` (how :class:`ServerProcess` knows
#: the token of a pod it starts, however the caller set it).
_SERVICE_TOKEN_ENV = "AIPLATFORM_AUTH__SERVICE_TOKEN"


def _secret() -> str:
    return secrets.token_urlsafe(32)  # 43 characters


@dataclass(frozen=True, slots=True)
class PodAuth:
    """What the kit's pods require: authentication on, and the shared ``service_token`` a
    gateway presents to its pods (the only credential the kit's callers use).

    ``admin_password`` is the first admin's (made at a pod's first start when no user exists),
    given so that the pod does not print a generated one. The kit's pods take no password
    logins, so they hash it at the lowest Argon2id cost, which keeps their starts quick.
    """

    service_token: str = field(default_factory=_secret, repr=False)
    admin_password: str = field(default_factory=_secret, repr=False)

    def settings(self, data_dir: str | Path) -> AuthSettings:
        """The ``[auth]`` section of a pod keeping its identities in ``data_dir``."""
        return AuthSettings(
            enabled=True,
            service_token=self.service_token,
            admin_password=self.admin_password,
            password_time_cost=1,
            password_memory_kib=8,
            data_dir=str(data_dir),
        )

    def env(self, data_dir: str | Path) -> dict[str, str]:
        """The same section as the environment of an ``aiplatform serve`` process."""
        section = self.settings(data_dir)
        return {
            "AIPLATFORM_AUTH__ENABLED": "true",
            _SERVICE_TOKEN_ENV: self.service_token,
            "AIPLATFORM_AUTH__ADMIN_PASSWORD": self.admin_password,
            "AIPLATFORM_AUTH__PASSWORD_TIME_COST": str(section.password_time_cost),
            "AIPLATFORM_AUTH__PASSWORD_MEMORY_KIB": str(section.password_memory_kib),
            "AIPLATFORM_AUTH__DATA_DIR": str(data_dir),
        }


#: The credentials of every pod the kit makes in this process (a test session).
POD_AUTH = PodAuth()


@cache
def _scratch() -> Path:
    """A folder of this process's own, removed when it exits."""
    folder = Path(tempfile.mkdtemp(prefix="aiplatform-kit-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


# -- a real server process -----------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on at the moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """An ``aiplatform serve`` child process on a loopback port; stop and start it again on the
    same port. Its environment is this process's without ``AIPLATFORM_*`` variables, plus
    ``env``; its log is kept in a folder of its own (:meth:`log`).

    With ``auth`` it requires those credentials (:meth:`PodAuth.env`, its identities kept in
    its folder); ``env`` may still override any of them.
    """

    def __init__(
        self,
        args: Iterable[str],
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        *,
        auth: PodAuth | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = Path(tempfile.mkdtemp(prefix="aiplatform-test-"))
        self._args = list(args)
        credentials = auth.env(self.folder / "auth") if auth is not None else {}
        self._env = {**_clean_env(), **credentials, **(env or {})}
        self._log = self.folder / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def serving(
        cls,
        settings: Settings,
        engines: Iterable[str],
        env: Mapping[str, str] | None = None,
        *,
        auth: PodAuth | None = None,
    ) -> ServerProcess:
        """A pod: ``aiplatform serve --engines A,B`` with ``settings``' engine sections,
        requiring ``auth``'s credentials when given (not started yet)."""
        env = {**settings_env(settings), **(env or {})}
        return cls(["--engines", ",".join(engines)], env, auth=auth)

    @property
    def service_token(self) -> str | None:
        """The ``[auth] service_token`` the process was given, which a caller presents to be
        served as a gateway (None: it was given none)."""
        return self._env.get(_SERVICE_TOKEN_ENV) or None

    def start(self, *, wait_ready: bool = True, timeout_s: float = 180.0) -> None:
        """Start the process and wait until it answers ``/ready`` (or ``/health``)."""
        command = [sys.executable, "-m", "aiplatform", "serve", "--port", str(self.port)]
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [*command, *self._args], env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait("/ready" if wait_ready else "/health", timeout_s)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the server is not running")
        return self._proc.pid

    def kill(self) -> None:
        """End the process at once with SIGKILL, as a crash or an OOM kill would."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` (``signal.SIGSTOP`` hangs the server, ``SIGCONT`` resumes it)."""
        if self._proc is None:
            raise RuntimeError("the server is not running")
        self._proc.send_signal(sig)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def log(self) -> str:
        return self._log.read_text(errors="replace")

    def _wait(self, path: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"server exited with {self._proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"server not up in {timeout_s}s:\n{self.log()}")


def _clean_env() -> dict[str, str]:
    """This process's environment without settings variables the caller did not ask for."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIPLATFORM_")}
    env["HF_HUB_OFFLINE"] = "1"
    return env


# -- engines in each mode ----------------------------------------------------------------------


_pod_numbers = itertools.count()


def asgi_pod(local: Engine, auth: PodAuth = POD_AUTH) -> Litestar:
    """The platform's app serving ``local`` alone, as a pod: requiring ``auth``'s credentials
    (its identities would be kept in a folder of this process's own) and answering to any host
    name. Its lifespan is not run: whoever uses it enters ``local`` itself."""
    from aiplatform.server.app import create_app

    # a pod is called by its service name, which any server bound beyond loopback answers to
    data_dir = _scratch() / f"pod-{next(_pod_numbers)}-auth"
    settings = Settings(http=HttpSettings(allowed_hosts=["*"]), auth=auth.settings(data_dir))
    return create_app(settings, engines={local.kind.name: local})


def asgi_client(
    app: Litestar, kind: EngineKind[Any], settings: EngineSettings, *, service_token: str | None
) -> RemoteEngine:
    """A remote adapter for ``kind`` calling ``app`` in-process, presenting ``service_token``
    (``settings`` supply its deadlines)."""
    remote_settings = msgspec.structs.replace(settings, url=f"http://{kind.name}-pod")
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # litestar's narrower scopes
    return RemoteEngine(
        kind, remote_settings, wire=HttpxWire(transport), service_token=service_token
    )


def asgi_remote(local: Engine, settings: EngineSettings) -> RemoteEngine:
    """A remote adapter reaching ``local`` through the platform's app (:func:`asgi_pod`),
    in-process, presenting the pod's service token as a gateway does (the caller enters
    ``local`` itself; ``settings`` supply the adapter's deadlines)."""
    app = asgi_pod(local, POD_AUTH)
    return asgi_client(app, local.kind, settings, service_token=POD_AUTH.service_token)


@asynccontextmanager
async def in_mode(
    mode: Mode,
    local: Engine,
    settings: EngineSettings,
    pod: ServerProcess | Callable[[], ServerProcess] | None = None,
) -> AsyncIterator[Engine]:
    """``local`` itself, or a remote adapter reaching the same engine: through the app in
    this process, or over a socket to ``pod`` (a started :class:`ServerProcess`, or a function
    that starts one on first use; socket mode needs one). The adapter presents the pod's
    service token (:attr:`ServerProcess.service_token`)."""
    kind = local.kind
    if mode == "remote-socket":
        if pod is None:
            raise ValueError("remote-socket mode needs a pod")
        server = pod if isinstance(pod, ServerProcess) else pod()
        url_settings = msgspec.structs.replace(settings, url=server.url)
        async with RemoteEngine(kind, url_settings, service_token=server.service_token) as remote:
            yield remote
        return
    async with local:
        if mode == "local":
            yield local
            return
        async with asgi_remote(local, settings) as remote:
            yield remote


@asynccontextmanager
async def engine_in_mode(
    mode: Mode,
    name: str,
    settings: Settings,
    *,
    pod: ServerProcess | Callable[[], ServerProcess] | None = None,
) -> AsyncIterator[Engine]:
    """Engine ``name`` as ``settings`` configure it (with the engines it needs), in ``mode``.

    In socket mode without a ``pod``, a ``aiplatform serve --engines NAME`` process with the
    same settings, requiring :data:`POD_AUTH`, runs for the duration of the block.
    """
    from aiplatform.server.wiring import build_configured

    section = settings.engine(name)
    # the kinds it may call are built for it (not entered in socket mode), and served beside
    # it by a socket pod
    local = build_configured(settings, name, served={}, build_optional=True)
    if mode == "remote-socket" and pod is None:
        called = list(ENGINE_KINDS[name].optional_uses)
        server = ServerProcess.serving(settings, [name, *called], auth=POD_AUTH)
        await anyio.to_thread.run_sync(server.start)
        try:
            async with in_mode(mode, local, section, server) as engine:
                yield engine
        finally:
            server.stop()
        return
    async with in_mode(mode, local, section, pod) as engine:
        yield engine


# -- examples ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one operation's example came to: an answer (builtins; a list of chunks when
    streamed) or an error (class, status, message, param, code)."""

    operation: str
    answer: Any = None
    error: tuple[str, int, str, str | None, str | None] | None = None


async def run_example(
    engine: Engine,
    op: Operation[Any, Any, Any],
    *,
    stream: bool = False,
    deadline_s: float = 30.0,
) -> Outcome:
    """Run ``op``'s example on ``engine``: its setup steps, then its request (streamed when
    ``stream`` and the operation streams), repeated until its ``until`` holds."""
    example = op.example
    if example is None:
        raise ValueError(f"operation {op.name!r} declares no example")
    models = await engine.list_models()
    context = ExampleContext(model=models[0].id if models else None)
    try:
        with anyio.fail_after(deadline_s):
            for step, request in example.setup:
                answer = await engine.invoke(step, build_request(request, context))
                context = ExampleContext(context.model, (*context.answers, answer))
            request = build_request(example.request, context)
            if stream:
                if op.chunk is None:
                    raise ValueError(f"operation {op.name!r} does not stream")
                request = msgspec.structs.replace(request, **{op.stream_field: True})
                chunks = [chunk async for chunk in engine.stream(op, request)]
                if op.progress_chunk is not None:  # as many as time allowed: not compared
                    chunks = [chunk for chunk in chunks if not op.progress_chunk(chunk)]
                return Outcome(op.name, answer=msgspec.to_builtins(chunks))
            answer = await engine.invoke(op, request)
            while example.until is not None and not example.until(answer):
                await anyio.sleep(0.05)
                answer = await engine.invoke(op, request)
    except AIPlatformError as exc:
        error = (type(exc).__name__, exc.status_code, exc.message, exc.param, exc.code)
        return Outcome(op.name, error=error)
    return Outcome(op.name, answer=msgspec.to_builtins(answer))


async def run_examples(engine: Engine, *, stream: bool = False) -> list[Outcome]:
    """Every example of ``engine``'s kind, in the order the kind declares its operations (with
    ``stream``: only the operations that stream, streamed)."""
    return [
        await run_example(engine, op, stream=stream)
        for op in engine.kind.operations
        if not stream or op.chunk is not None
    ]


#: Keys whose values differ between two runs of the same requests: ids the engine makes up,
#: and clock readings.
_ID_KEYS = ("id",)
_TIME_KEYS = ("created",)


def normalized(value: Any) -> Any:
    """``value`` (builtins) with made-up ids replaced by ``<id:N>`` (numbered by first
    appearance, so equal ids stay equal) and timestamps by ``<time>``: the fields that
    legitimately differ between two engines given the same requests."""
    ids: dict[Any, str] = {}

    def walk(node: Any, key: str | None) -> Any:
        if isinstance(node, dict):
            return {name: walk(item, name) for name, item in node.items()}
        if isinstance(node, list):
            return [walk(item, key) for item in node]
        if key is None:
            return node
        if key in _TIME_KEYS or key.endswith("_at"):
            return "<time>"
        if (key in _ID_KEYS or key.endswith(("_id", "_ids"))) and isinstance(node, str | int):
            return ids.setdefault(node, f"<id:{len(ids)}>")
        return node

    return walk(value, None)
