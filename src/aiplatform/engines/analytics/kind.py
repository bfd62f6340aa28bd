"""The analytics kind: every analytic engine, the engine listing and jobs, with one section.

Its operation table is made from the method modules (``engines/analytics/methods``); the engine
module, which starts worker processes, is imported only when an in-process engine is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.engines.analytics.operations import OPERATIONS
from aiplatform.engines.analytics.settings import AnalyticsSettings
from aiplatform.engines.base import NO_SECRETS, EngineKind, Secrets

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["ANALYTICS"]


#: Kinds some analytic engines call (``faiss_retrieval`` embeds, ``rag_evaluation`` searches
#: and grades), when the server has them.
_CALLED = ("embeddings", "rag", "llm")


def _build_local(
    settings: AnalyticsSettings, needs: Needs, secrets: Secrets = NO_SECRETS
) -> Engine:
    from aiplatform.engines.analytics.engine import LocalAnalyticsEngine

    return LocalAnalyticsEngine(
        settings,
        datasets=needs.get("datasets"),
        engines={kind: needs[kind] for kind in _CALLED if kind in needs},
        storage_key=secrets.storage_key,
        service_token=secrets.service_token,
    )


ANALYTICS: EngineKind[AnalyticsSettings] = EngineKind(
    name="analytics",
    summary="Analytic engines (AutoML, causality, forecasting, anomalies ...) and their jobs",
    operations=OPERATIONS,
    settings_type=AnalyticsSettings,
    build_local=_build_local,
    build_with_secrets=_build_local,
    uses=("datasets",),
    optional_uses=_CALLED,
)
