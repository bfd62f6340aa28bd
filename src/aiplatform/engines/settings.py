"""What every engine section of the configuration has, and the bases kinds share.

Each kind's own settings Struct lives with the kind (``engines/<kind>/settings.py``) and
subclasses :class:`EngineSettings`; the ``[engines]`` table is built from the registry. A field's
``#:`` comment is its documentation: the configuration reference in ``docs/`` is generated from
it (``python -m aiplatform.settings_docs``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import msgspec

__all__ = [
    "AudioInputSettings",
    "EngineSettings",
    "NonNegativeFloat",
    "PositiveFloat",
    "PositiveInt",
    "default_cache_dir",
    "default_data_dir",
]

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]


class EngineSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What every engine section has: the local/remote switch and the remote's connection."""

    #: Serve this engine at all (``--engines`` enables only the named ones).
    enabled: bool = True
    #: **Forward** this engine to the service at this URL; unset runs it in-process. A trailing
    #: ``/v1`` is accepted.
    url: str | None = None
    #: Sent upstream as ``Authorization: Bearer <api_key>``.
    api_key: str | None = None
    #: Whole-request deadline for a remote call; past it, 504 ``upstream_timeout``.
    timeout_s: PositiveFloat = 60.0
    #: Connect deadline; also the deadline of readiness probes and model listing.
    connect_timeout_s: PositiveFloat = 3.0
    #: Remote readiness probe (a path from ``/``); unset tries ``/ready``, then ``/health``.
    ready_path: Annotated[str, msgspec.Meta(pattern="^/")] | None = None
    #: Once the remote is found unreachable (a connection refused, or a call that timed out or
    #: broke off followed by a probe that got no answer either), calls fail at once with 503
    #: ``upstream_circuit_open`` instead of waiting on it, until it answers a probe of its
    #: readiness path, sent every ``probe_interval_s``. Off: every call tries the remote.
    circuit_breaker: bool = True
    #: Seconds between probes of a remote whose circuit is open.
    probe_interval_s: PositiveFloat = 1.0
    #: Connection pool size to the remote.
    max_connections: PositiveInt = 64
    #: The largest response body taken from the remote, counted both as sent and decompressed;
    #: a larger one is refused with 502 ``bad_upstream_response``.
    max_response_bytes: PositiveInt = 64 * 1024 * 1024
    #: The largest event (line) of a streamed response from the remote, decompressed; a larger
    #: one ends the stream with a 502 ``bad_upstream_response`` error.
    max_event_bytes: PositiveInt = 1024 * 1024
    #: Model calls of this engine that run at once in-process (its worker threads).
    max_concurrency: PositiveInt = 1
    #: Requests that may wait in-process beyond those running, in each of the engine's queues
    #: (its worker threads or processes, the micro-batcher, each LLM model's slots). One more is
    #: refused at once with 429 ``engine_overloaded`` and a ``Retry-After`` header, rather than
    #: waiting behind minutes of work.
    max_queue: PositiveInt = 64
    #: Seconds a request may wait in-process before it starts; past it, it is dropped before
    #: it runs with 429 ``queue_timeout``. Unset waits without limit.
    queue_timeout_s: PositiveFloat | None = 60.0

    @property
    def is_remote(self) -> bool:
        return bool(self.url)


class AudioInputSettings(EngineSettings, kw_only=True, forbid_unknown_fields=True):
    """What every engine that takes uploaded audio has."""

    #: Longer uploads are refused with 400 ``audio_too_long``.
    max_duration_s: PositiveFloat = 3600.0


def default_data_dir() -> str:
    """Where engines keep what they store: ``$XDG_DATA_HOME/aiplatform`` (or
    ``~/.local/share/aiplatform``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "aiplatform")


def default_cache_dir() -> str:
    """Where assembled model files are cached: ``$XDG_CACHE_HOME/aiplatform``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "aiplatform")
