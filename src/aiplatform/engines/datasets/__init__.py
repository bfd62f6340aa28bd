"""The datasets kind: tables uploaded once (CSV, Parquet, Excel, JSON lines) and named by id."""

from aiplatform.engines.datasets.kind import DATASETS
from aiplatform.engines.datasets.operations import (
    DATASET_TABLE,
    DELETE_DATASET,
    GET_DATASET,
    LIST_DATASETS,
    UPLOAD_DATASET,
)

__all__ = [
    "DATASETS",
    "DATASET_TABLE",
    "DELETE_DATASET",
    "GET_DATASET",
    "LIST_DATASETS",
    "UPLOAD_DATASET",
]
