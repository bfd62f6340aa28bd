"""Liveness and readiness bodies (``/health``, ``/ready``)."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["EngineStatus", "Health", "Readiness"]


class Health(msgspec.Struct, kw_only=True):
    status: Literal["ok"] = "ok"


class EngineStatus(msgspec.Struct, kw_only=True):
    mode: Literal["local", "remote"]
    ready: bool
    detail: str = ""
    #: Requests waiting in the in-process engine's queues (None for a remote engine).
    queued: int | None = None
    #: Model calls running in-process now: on its threads, processes or generation slots.
    running: int | None = None
    #: A remote engine's circuit breaker: ``open`` while calls fail at once after the remote
    #: failed, until a probe finds it ready (None for an in-process engine or with no breaker).
    circuit: Literal["closed", "open"] | None = None


class Readiness(msgspec.Struct, kw_only=True):
    status: Literal["ready", "not_ready"]
    engines: dict[str, EngineStatus]
