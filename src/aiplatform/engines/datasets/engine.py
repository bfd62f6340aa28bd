"""The in-process datasets engine: uploads read in worker processes, kept per owner."""

from __future__ import annotations

from pathlib import Path

from aiplatform.api.datasets import (
    Dataset,
    DatasetDeleted,
    DatasetList,
    DatasetListRequest,
    DatasetRef,
    DatasetTable,
    DatasetUpload,
)
from aiplatform.engines.datasets.kind import DATASETS
from aiplatform.engines.datasets.operations import (
    DATASET_TABLE,
    DELETE_DATASET,
    GET_DATASET,
    LIST_DATASETS,
    UPLOAD_DATASET,
)
from aiplatform.engines.datasets.parsing import ParseRequest, format_of, parse_upload
from aiplatform.engines.datasets.settings import DatasetsSettings
from aiplatform.engines.datasets.store import DatasetStore
from aiplatform.engines.local import LocalEngine
from aiplatform.engines.settings import default_data_dir
from aiplatform.tenant import current_tenant

__all__ = ["LocalDatasetsEngine"]


class LocalDatasetsEngine(LocalEngine):
    def __init__(self, settings: DatasetsSettings, *, storage_key: str | None = None) -> None:
        """``storage_key``: the key the catalogue is encrypted with (None: plain SQLite)."""
        super().__init__(DATASETS, settings=settings, executor="processes")
        self._settings = settings
        folder = settings.data_dir or str(Path(default_data_dir()) / "datasets")
        self._store = DatasetStore(folder, key=storage_key)
        self.bind(UPLOAD_DATASET, self.upload)
        self.bind(LIST_DATASETS, self.list)
        self.bind(GET_DATASET, self.get)
        self.bind(DATASET_TABLE, self.table)
        self.bind(DELETE_DATASET, self.delete)

    def load(self) -> None:
        self._store.open()

    def unload(self) -> None:
        self._store.close()

    async def upload(self, request: DatasetUpload) -> Dataset:
        owner = current_tenant()
        filename = request.file.filename or "upload"
        format_ = format_of(filename, request.format)
        parsed = await self.call(
            parse_upload,
            ParseRequest(
                data=request.file.data,
                format=format_,
                filename=filename,
                max_rows=self._settings.max_rows,
                max_columns=self._settings.max_columns,
            ),
        )
        return await self.run_blocking(
            lambda: self._store.add(
                owner,
                name=request.name or filename,
                filename=filename,
                format=format_,
                rows=parsed.rows,
                columns=parsed.columns,
                parquet=parsed.parquet,
            )
        )

    async def list(self, request: DatasetListRequest) -> DatasetList:
        owner = current_tenant()
        return DatasetList(data=await self.run_blocking(self._store.owned, owner, request.limit))

    async def get(self, request: DatasetRef) -> Dataset:
        return await self.run_blocking(self._store.get, current_tenant(), request.dataset_id)

    async def table(self, request: DatasetRef) -> DatasetTable:
        dataset, parquet = await self.run_blocking(
            self._store.table, current_tenant(), request.dataset_id
        )
        return DatasetTable(
            id=dataset.id, rows=dataset.rows, columns=dataset.columns, parquet=parquet
        )

    async def delete(self, request: DatasetRef) -> DatasetDeleted:
        await self.run_blocking(self._store.delete, current_tenant(), request.dataset_id)
        return DatasetDeleted(id=request.dataset_id)
