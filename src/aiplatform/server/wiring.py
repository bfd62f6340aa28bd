"""The one place that reads local-vs-remote: settings in, engines out."""

from __future__ import annotations

from typing import Any

from aiplatform.audio.pipeline import TranscriptionPipeline
from aiplatform.engines.base import Engine, EngineKind, Needs, Secrets
from aiplatform.engines.owned import OwningEngine
from aiplatform.engines.rag.chat import RagChat
from aiplatform.engines.registry import ENGINE_KINDS, engine_kind
from aiplatform.engines.settings import EngineSettings
from aiplatform.remote.client import RemoteEngine
from aiplatform.remote.wire import Wire
from aiplatform.settings import Settings

__all__ = ["build_configured", "build_engine", "build_engines", "compose"]


def build_engine(
    kind: EngineKind[Any],
    settings: EngineSettings,
    *,
    needs: Needs | None = None,
    wire: Wire | None = None,
    storage_key: str | None = None,
    service_token: str | None = None,
) -> Engine:
    """The remote adapter when the section has a ``url`` (over ``wire``, the network unless
    given), else the kind's in-process engine (given the engines it ``needs``, and the
    ``storage_key`` its databases are encrypted with when it keeps any)."""
    if settings.is_remote:
        return RemoteEngine(kind, settings, wire=wire, service_token=service_token)
    if not isinstance(settings, kind.settings_type):
        raise TypeError(f"engine {kind.name!r} needs {kind.settings_type.__name__}")
    missing = set(kind.needs(settings)) - set(needs or {})
    if missing:
        raise TypeError(f"engine {kind.name!r} needs the {', '.join(sorted(missing))} engine")
    if kind.build_with_secrets is not None:
        secrets = Secrets(storage_key=storage_key, service_token=service_token)
        return kind.build_with_secrets(settings, needs or {}, secrets)
    return kind.build_local(settings, needs or {})


def build_engines(settings: Settings) -> dict[str, Engine]:
    """Every enabled engine of ``settings``, by name."""
    engines: dict[str, Engine] = {}
    for name in ENGINE_KINDS:  # the registry lists every kind after those it needs
        if settings.engine(name).enabled:
            engines[name] = build_configured(settings, name, served=engines)
    return compose(engines)


def build_configured(
    settings: Settings, name: str, *, served: Needs, build_optional: bool = False
) -> Engine:
    """Engine ``name`` as ``settings`` configure it.

    An in-process engine that calls another kind gets the one ``served`` here; where that kind
    is not served (a pod started with ``--engines rag``) it gets one of its own, built from the
    kind's section (so it is remote when the section has a ``url``) and started and stopped
    with it. A kind it may do without (``optional_uses``) it gets only when served here or
    forwarded by a ``url`` — or, with ``build_optional`` (the contract suite's fakes), built
    in-process as well.
    """
    kind = engine_kind(name)
    section = settings.engine(name)
    if section.is_remote:
        return build_engine(
            kind,
            section,
            service_token=settings.auth.service_token,
            storage_key=settings.storage.encryption_key,
        )
    needs: dict[str, Engine] = {}
    owned: list[Engine] = []
    for optional in kind.optional_uses:
        engine = served.get(optional)
        if engine is None and (settings.engine(optional).is_remote or build_optional):
            engine = build_configured(settings, optional, served=needs)
            owned.append(engine)
        if engine is not None:
            needs[optional] = engine
    if not kind.needs(section) and not needs:
        return build_engine(
            kind,
            section,
            service_token=settings.auth.service_token,
            storage_key=settings.storage.encryption_key,
        )
    for needed in kind.needs(section):
        engine = served.get(needed)
        if engine is None:
            engine = build_configured(settings, needed, served={})
            owned.append(engine)
        needs[needed] = engine
    built = build_engine(
        kind,
        section,
        needs=needs,
        service_token=settings.auth.service_token,
        storage_key=settings.storage.encryption_key,
    )
    return OwningEngine(built, owned) if owned else built


def compose(engines: dict[str, Engine]) -> dict[str, Engine]:
    """Engines wrapped with the extensions composed at the receiving server: transcriptions
    with ``diarize`` / ``emotion``, chat completions with ``rag``."""
    composed = dict(engines)
    asr = engines.get("asr")
    if asr is not None and not isinstance(asr, TranscriptionPipeline):
        composed["asr"] = TranscriptionPipeline(
            asr,
            diarization=engines.get("diarization"),
            speakers=engines.get("speakers"),
            emotion=engines.get("emotion"),
        )
    llm = engines.get("llm")
    if llm is not None and not isinstance(llm, RagChat):
        composed["llm"] = RagChat(llm, rag=engines.get("rag"), rerank=engines.get("rerank"))
    return composed
