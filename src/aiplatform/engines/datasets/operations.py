"""The datasets kind's operation table. A leaf: imports nothing of the engine."""

from __future__ import annotations

from aiplatform.api.datasets import (
    Dataset,
    DatasetDeleted,
    DatasetList,
    DatasetListRequest,
    DatasetRef,
    DatasetTable,
    DatasetUpload,
)
from aiplatform.engines.base import Example, ExampleContext, NoChunk, Operation
from aiplatform.forms import FilePart

__all__ = [
    "DATASET_TABLE",
    "DELETE_DATASET",
    "EXAMPLE_CSV",
    "GET_DATASET",
    "LIST_DATASETS",
    "UPLOAD_DATASET",
]

#: A small table, as a user would upload it.
EXAMPLE_CSV = (
    b"month,region,visitors,revenue\n"
    b"2024-01-01,north,120,1530.5\n"
    b"2024-02-01,north,135,1702.0\n"
    b"2024-03-01,south,98,1210.25\n"
    b"2024-04-01,south,,1302.75\n"
    b"2024-05-01,north,150,1890.0\n"
)


def _example_upload(name: str) -> DatasetUpload:
    return DatasetUpload(
        file=FilePart(filename="visits.csv", content_type="text/csv", data=EXAMPLE_CSV),
        name=name,
    )


def _uploaded(context: ExampleContext) -> DatasetRef:
    dataset: Dataset = context.answers[0]
    return DatasetRef(dataset_id=dataset.id)


UPLOAD_DATASET: Operation[DatasetUpload, Dataset, NoChunk] = Operation(
    name="upload_dataset",
    method="POST",
    path="/v1/datasets",
    request=DatasetUpload,
    response=Dataset,
    form=True,
    example=Example(request=_example_upload("visits")),
    summary="Upload a table (CSV, Parquet, Excel or JSON lines); its id, columns and row count",
    tags=("datasets",),
)

LIST_DATASETS: Operation[DatasetListRequest, DatasetList, NoChunk] = Operation(
    name="list_datasets",
    method="GET",
    path="/v1/datasets",
    request=DatasetListRequest,
    response=DatasetList,
    example=Example(request=DatasetListRequest()),
    summary="The caller's datasets, newest first",
    tags=("datasets",),
)

GET_DATASET: Operation[DatasetRef, Dataset, NoChunk] = Operation(
    name="get_dataset",
    method="GET",
    path="/v1/datasets/{dataset_id}",
    request=DatasetRef,
    response=Dataset,
    example=Example(request=_uploaded, setup=((UPLOAD_DATASET, _example_upload("get-me")),)),
    summary="One dataset's description",
    tags=("datasets",),
)

DATASET_TABLE: Operation[DatasetRef, DatasetTable, NoChunk] = Operation(
    name="dataset_table",
    method="GET",
    path="/v1/datasets/{dataset_id}/table",
    request=DatasetRef,
    response=DatasetTable,
    example=Example(request=_uploaded, setup=((UPLOAD_DATASET, _example_upload("read-me")),)),
    summary="A dataset's table as Parquet (what analytic engines read)",
    tags=("datasets",),
)

DELETE_DATASET: Operation[DatasetRef, DatasetDeleted, NoChunk] = Operation(
    name="delete_dataset",
    method="DELETE",
    path="/v1/datasets/{dataset_id}",
    request=DatasetRef,
    response=DatasetDeleted,
    example=Example(request=_uploaded, setup=((UPLOAD_DATASET, _example_upload("drop-me")),)),
    summary="Delete a dataset and its stored table",
    tags=("datasets",),
)
