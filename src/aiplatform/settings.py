"""Settings: a TOML file plus environment overrides, decoded into msgspec Structs.

Every engine has one section, ``[engines.NAME]``, whose Struct lives with its kind
(``engines/<kind>/settings.py``); the ``[engines]`` table is built from the registry, so a new
kind brings its section with it. With ``url`` set the engine is forwarded to that service;
without it the engine runs in-process with the section's local options.

Environment variables override the file: ``AIPLATFORM_<SECTION>__<KEY>`` with ``__`` between
levels, e.g. ``AIPLATFORM_SERVER__PORT=9000`` or
``AIPLATFORM_ENGINES__EMBEDDINGS__URL=http://embeddings:8000``. ``AIPLATFORM_CONFIG`` names the
file. An empty value leaves the setting to the file or the default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import msgspec

from aiplatform.auth.settings import AuthSettings
from aiplatform.coordinator.settings import CoordinatorSettings
from aiplatform.engines.registry import ENGINE_KINDS
from aiplatform.engines.settings import EngineSettings, PositiveFloat, PositiveInt
from aiplatform.limits.settings import RateLimitSettings
from aiplatform.observability.metrics_settings import MetricsSettings
from aiplatform.observability.tracing import TracingSettings
from aiplatform.server.guard.hosts import is_loopback
from aiplatform.server.http_settings import HttpSettings
from aiplatform.storage.settings import StorageSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import EngineKind

__all__ = [
    "ENV_PREFIX",
    "EnginesSettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "engine_names",
    "load_settings",
    "select_engines",
]

ENV_PREFIX = "AIPLATFORM_"
CONFIG_ENV = "AIPLATFORM_CONFIG"

S = TypeVar("S", bound=EngineSettings)


class SettingsError(ValueError):
    """The configuration cannot be read or does not validate."""


class ServerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Address to bind.
    host: str = "127.0.0.1"
    #: Port to bind.
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    #: Larger request bodies are refused with 413 before they are read in full.
    max_body_bytes: PositiveInt = 16 * 1024 * 1024
    #: Seconds a request's body may take to arrive in full, counted from its first read; a
    #: slower one is refused with 408 ``body_timeout`` and its connection closed.
    body_timeout_s: PositiveFloat = 60.0
    #: Open connections (or requests in progress) at which a new request is answered 503 at
    #: once (uvicorn's ``limit_concurrency``), so slow clients cannot hold every socket.
    limit_concurrency: Annotated[int, msgspec.Meta(ge=2)] = 1024
    #: ``debug`` also logs unknown request fields that were ignored.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: ``text``: plain lines; ``json``: one JSON object per line with the request id and the
    #: tenant (for a log collector).
    log_format: Literal["text", "json"] = "text"
    #: One access log line per HTTP request: method, path, status, duration, request id,
    #: tenant and engine.
    access_log: bool = False


if TYPE_CHECKING:

    class EnginesSettings(msgspec.Struct, kw_only=True):
        """One section per registered kind, named after it."""

        def __getattr__(self, name: str) -> EngineSettings: ...

else:
    EnginesSettings = msgspec.defstruct(
        "EnginesSettings",
        [
            (name, kind.settings_type, msgspec.field(default_factory=kind.settings_type))
            for name, kind in ENGINE_KINDS.items()
        ],
        kw_only=True,
        forbid_unknown_fields=True,
        module=__name__,
    )


def _engines_default() -> EnginesSettings:
    return EnginesSettings()


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    limits: RateLimitSettings = msgspec.field(default_factory=RateLimitSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    tracing: TracingSettings = msgspec.field(default_factory=TracingSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    coordinator: CoordinatorSettings = msgspec.field(default_factory=CoordinatorSettings)
    engines: EnginesSettings = msgspec.field(default_factory=_engines_default)

    @property
    def auth_enabled(self) -> bool:
        """``[auth] enabled``, or when unset: on unless the server binds to loopback only."""
        if self.auth.enabled is not None:
            return self.auth.enabled
        return not is_loopback(self.server.host)

    def engine(self, name: str) -> EngineSettings:
        """The section of engine ``name``."""
        section = getattr(self.engines, name, None)
        if not isinstance(section, EngineSettings):
            raise SettingsError(f"unknown engine {name!r}; known: {', '.join(engine_names())}")
        return section

    def section(self, kind: EngineKind[S]) -> S:
        """The section of ``kind``, typed as the kind's own settings."""
        section = self.engine(kind.name)
        if not isinstance(section, kind.settings_type):
            raise SettingsError(f"section {kind.name!r} is not {kind.settings_type.__name__}")
        return section


def engine_names() -> list[str]:
    """Names of every engine section, each after the kinds it uses."""
    return list(ENGINE_KINDS)


def load_settings(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Read ``path`` (or ``$AIPLATFORM_CONFIG``), apply environment overrides, validate."""
    env = os.environ if env is None else env
    path = path or env.get(CONFIG_ENV) or None
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    _apply_env(data, env)
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        where = f" in {path}" if path else ""
        raise SettingsError(f"invalid configuration{where}: {exc}") from exc


def select_engines(settings: Settings, names: Iterable[str]) -> Settings:
    """A copy of ``settings`` with only the engines in ``names`` enabled (a pod's view)."""
    wanted = {name.strip() for name in names if name.strip()}
    unknown = wanted - set(engine_names())
    if unknown:
        raise SettingsError(
            f"unknown engine(s) {', '.join(sorted(unknown))}; known: {', '.join(engine_names())}"
        )
    sections = {
        name: msgspec.structs.replace(settings.engine(name), enabled=name in wanted)
        for name in engine_names()
    }
    engines = msgspec.structs.replace(settings.engines, **sections)
    return msgspec.structs.replace(settings, engines=engines)


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for key, value in sorted(env.items()):
        if not key.startswith(ENV_PREFIX) or key == CONFIG_ENV or value == "":
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        if not all(parts):
            raise SettingsError(f"malformed settings variable {key}")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SettingsError(f"{key} overrides a value, not a section")
            node = child
        # a JSON list or table for values a single string cannot hold (the LLM's models)
        node[parts[-1]] = _json_or_text(value)


def _json_or_text(value: str) -> Any:
    if value[:1] in ("[", "{"):
        try:
            return msgspec.json.decode(value)
        except msgspec.DecodeError as exc:
            raise SettingsError(f"settings value {value[:40]!r} is not valid JSON: {exc}") from exc
    return value
