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


class Readiness(msgspec.Struct, kw_only=True):
    status: Literal["ready", "not_ready"]
    engines: dict[str, EngineStatus]
