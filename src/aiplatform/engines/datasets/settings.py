"""The datasets section, ``[engines.datasets]``."""

from __future__ import annotations

from aiplatform.engines.settings import EngineSettings, PositiveInt

__all__ = ["DatasetsSettings"]


class DatasetsSettings(EngineSettings, kw_only=True, forbid_unknown_fields=True):
    """Uploads are read in worker processes (``max_concurrency`` of them); an upload is also
    bounded by ``server.max_body_bytes``."""

    #: Uploads read at once, each in a worker process.
    max_concurrency: PositiveInt = 2
    #: Datasets are kept here (a SQLite catalogue and one Parquet file each); unset:
    #: ``<data dir>/datasets``.
    data_dir: str | None = None
    #: Longer tables are refused with 413 ``dataset_too_large``.
    max_rows: PositiveInt = 1_000_000
    #: Wider tables are refused with 413 ``dataset_too_large``.
    max_columns: PositiveInt = 1_000
