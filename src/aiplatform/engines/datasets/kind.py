"""The datasets kind: its operations, its settings and how its in-process engine is built."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiplatform.engines.base import NO_SECRETS, EngineKind, Secrets
from aiplatform.engines.datasets.operations import (
    DATASET_TABLE,
    DELETE_DATASET,
    GET_DATASET,
    LIST_DATASETS,
    UPLOAD_DATASET,
)
from aiplatform.engines.datasets.settings import DatasetsSettings

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine, Needs

__all__ = ["DATASETS"]


def _build_local(settings: DatasetsSettings, needs: Needs, secrets: Secrets = NO_SECRETS) -> Engine:
    from aiplatform.engines.datasets.engine import LocalDatasetsEngine

    return LocalDatasetsEngine(settings, storage_key=secrets.storage_key)


DATASETS: EngineKind[DatasetsSettings] = EngineKind(
    name="datasets",
    summary="Datasets: uploaded tables (CSV, Parquet, Excel, JSON lines) for analytic engines",
    operations=(UPLOAD_DATASET, LIST_DATASETS, GET_DATASET, DATASET_TABLE, DELETE_DATASET),
    settings_type=DatasetsSettings,
    build_local=_build_local,
    build_with_secrets=_build_local,
)
