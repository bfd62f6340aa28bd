"""Tables as requests carry them: inline records, or the id of a stored dataset."""

from __future__ import annotations

from typing import Annotated, TypeAlias

import msgspec

from aiplatform.api.ids import Id

__all__ = ["Cell", "Records", "Seed", "TableInput", "TableInt"]

#: An integer a table can hold (64 bits, as Parquet and the libraries store it).
TableInt = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
#: One value of an inline record.
Cell: TypeAlias = str | TableInt | float | bool | None
#: A table given inline: one object per row, column name to value.
Records: TypeAlias = list[dict[str, Cell]]
#: A second table an analytic engine takes in its params (rows to predict, a reference set):
#: inline records, or the id of a stored dataset.
TableInput: TypeAlias = Records | Id
#: The seed every random choice of a run derives from.
Seed = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
