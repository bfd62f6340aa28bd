"""Column roles checked against the data: each rule broken is a 400 naming the column and the rule.

Computations call these before they compute: ``numeric(frame, params.target, "target")``
returns the column as floats or refuses it (unknown, not numeric, not finite, too large, all
missing, constant), so no method falls back silently or computes on what it was not meant to.
The ``role`` is the params field that named the column; errors point at it
(``param="params.target"``).

Numbers must be finite and smaller in magnitude than :data:`MAX_MAGNITUDE`: an infinity, or a
value whose square or sum overflows a float, breaks the libraries the engines compute with
(scikit-learn refuses it, statsmodels raises ``OverflowError``, a sum of squares turns into
infinity) and would otherwise end as an engine failure rather than a 400 naming the cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiplatform.errors import InvalidRequestError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "MAX_MAGNITUDE",
    "categorical",
    "check_finite",
    "check_finite_table",
    "column",
    "columns",
    "numeric",
    "numeric_columns",
    "require_rows",
    "time_column",
]

#: How many column names an error lists before it says "..."
_LISTED = 20
#: The largest magnitude a number may have (exclusive): squares and sums of squares of numbers
#: below it stay far inside the float range.
MAX_MAGNITUDE = 1e150


def _known(frame: pd.DataFrame) -> str:
    names = [str(name) for name in frame.columns]
    shown = ", ".join(repr(name) for name in names[:_LISTED])
    return shown + (", ..." if len(names) > _LISTED else "")


def column(frame: pd.DataFrame, name: str, role: str) -> pd.Series:
    """The column ``name``; a 400 ``unknown_column`` when the data have none of that name."""
    if name not in frame.columns:
        raise InvalidRequestError(
            f"Column '{name}' given as {role} is not in the data (columns: {_known(frame)}).",
            param=f"params.{role}",
            code="unknown_column",
        )
    return frame[name]


def columns(frame: pd.DataFrame, names: Sequence[str], role: str) -> list[str]:
    """``names``, each checked to exist (no duplicates); a 400 for the first that does not."""
    seen: set[str] = set()
    for name in names:
        column(frame, name, role)
        if name in seen:
            raise InvalidRequestError(
                f"Column '{name}' is given twice in {role}.",
                param=f"params.{role}",
                code="duplicate_column",
            )
        seen.add(name)
    return list(names)


def numeric(
    frame: pd.DataFrame,
    name: str,
    role: str,
    *,
    allow_constant: bool = False,
    largest: float = MAX_MAGNITUDE,
) -> pd.Series:
    """The column ``name`` as floats.

    400s: ``unknown_column``; ``not_numeric`` when a present value is not a number (booleans
    count as 0/1); ``not_finite`` / ``value_too_large`` for an infinity or a huge number (see
    :func:`check_finite`); ``all_missing`` when no value is present; ``constant_column`` when
    every present value is the same (unless ``allow_constant``). ``largest``: a lower limit
    than :data:`MAX_MAGNITUDE` for a computation that needs one (float32 in a library).
    """
    import pandas as pd

    series = column(frame, name, role)
    if series.dtype == bool:
        series = series.astype(float)
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & series.notna()
    if bool(bad.any()):
        example = series[bad].iloc[0]
        raise InvalidRequestError(
            f"Column '{name}' given as {role} must be numeric; row {int(bad.to_numpy().argmax())} "
            f"holds {str(example)[:40]!r}.",
            param=f"params.{role}",
            code="not_numeric",
        )
    values = values.astype(float)
    check_finite(values, name, role, largest=largest)
    present = values.dropna()
    if present.empty:
        raise InvalidRequestError(
            f"Column '{name}' given as {role} has no values (all missing).",
            param=f"params.{role}",
            code="all_missing",
        )
    if not allow_constant and present.nunique() == 1:
        raise InvalidRequestError(
            f"Column '{name}' given as {role} is constant ({present.iloc[0]:g}); it carries no "
            "information.",
            param=f"params.{role}",
            code="constant_column",
        )
    return values


def numeric_columns(
    frame: pd.DataFrame,
    names: Sequence[str],
    role: str,
    *,
    allow_constant: bool = False,
    largest: float = MAX_MAGNITUDE,
) -> pd.DataFrame:
    """The columns ``names`` as a float DataFrame, each checked as :func:`numeric` does."""
    import pandas as pd

    columns(frame, names, role)
    return pd.DataFrame(
        {
            name: numeric(frame, name, role, allow_constant=allow_constant, largest=largest)
            for name in names
        },
        index=frame.index,
    )


def check_finite(
    values: pd.Series, name: str, role: str, *, largest: float = MAX_MAGNITUDE
) -> None:
    """Refuse a numeric column ``name`` (given as ``role``) that holds an infinity (400
    ``not_finite``) or a number of magnitude ``largest`` (:data:`MAX_MAGNITUDE`) or more
    (400 ``value_too_large``); missing values (NaN) pass."""
    import numpy as np

    _refuse_unsafe(
        values.to_numpy(dtype=float, na_value=np.nan),
        f"Column '{name}' given as {role}",
        f"params.{role}",
        largest,
    )


def check_finite_table(frame: pd.DataFrame, where: str) -> None:
    """Refuse a table whose numeric columns (booleans aside) hold an infinity or a number of
    magnitude :data:`MAX_MAGNITUDE` or more, as :func:`check_finite` does; ``where`` names the
    table (``"data"``, ``"params.reference"``) and is the error's ``param``. Text columns are
    left to :func:`numeric`, which checks the numbers it reads from them."""
    import numpy as np
    import pandas as pd

    for name in frame.columns:
        series = frame[name]
        dtype = series.dtype
        if (
            not pd.api.types.is_numeric_dtype(dtype)
            or pd.api.types.is_bool_dtype(dtype)
            or pd.api.types.is_complex_dtype(dtype)
        ):
            continue
        values = series.to_numpy(dtype=float, na_value=np.nan)
        _refuse_unsafe(values, f"Column '{name}' in '{where}'", where, MAX_MAGNITUDE)


def _refuse_unsafe(
    values: np.ndarray[Any, Any], described: str, param: str, largest: float
) -> None:
    """The 400 for the first infinite value, else for the first too large one (rows counted
    from 0 in the table's order)."""
    import numpy as np

    infinite = np.isinf(values)
    if infinite.any():
        row = int(infinite.argmax())
        raise InvalidRequestError(
            f"{described} holds {values[row]} at row {row}; numbers must be finite (a missing "
            "value is null).",
            param=param,
            code="not_finite",
        )
    with np.errstate(invalid="ignore"):
        large = np.abs(values) >= largest
    if large.any():
        row = int(large.argmax())
        value, limit = (f"{number:.3g}".replace("e+", "e") for number in (values[row], largest))
        raise InvalidRequestError(
            f"{described} holds {value} at row {row}; numbers beyond ±{limit} cannot be "
            "computed with safely.",
            param=param,
            code="value_too_large",
        )


def varying_numeric_columns(
    frame: pd.DataFrame, names: Sequence[str] | None, role: str, warn: Callable[[str], None]
) -> pd.DataFrame:
    """The columns ``names`` as floats (each checked as :func:`numeric` does); unset: every
    numeric column that has a value, less the constant ones (left out with a warning). A 400
    ``no_numeric_columns`` when none is left."""
    import pandas as pd

    if names is not None:
        return numeric_columns(frame, names, role)
    found = [
        str(name)
        for name in frame.columns
        if pd.api.types.is_numeric_dtype(frame[name])
        and not pd.api.types.is_bool_dtype(frame[name])
        and bool(frame[name].notna().any())
    ]
    numeric = numeric_columns(frame, found, role, allow_constant=True)
    constant = [name for name in found if numeric[name].dropna().nunique() <= 1]
    if constant:
        warn(f"Constant columns are left out: {', '.join(constant)}.")
    numeric = numeric.drop(columns=constant)
    if numeric.columns.empty:
        raise InvalidRequestError(
            f"The data have no numeric column that varies; name columns in params.{role}.",
            param=f"params.{role}",
            code="no_numeric_columns",
        )
    return numeric


def categorical(frame: pd.DataFrame, name: str, role: str) -> pd.Series:
    """The column ``name`` as strings (missing values stay missing); 400 ``all_missing`` when
    it has no value and ``constant_column`` when it has only one."""
    series = column(frame, name, role)
    present = series.dropna()
    if present.empty:
        raise InvalidRequestError(
            f"Column '{name}' given as {role} has no values (all missing).",
            param=f"params.{role}",
            code="all_missing",
        )
    if present.astype(str).nunique() == 1:
        raise InvalidRequestError(
            f"Column '{name}' given as {role} has a single value; it carries no information.",
            param=f"params.{role}",
            code="constant_column",
        )
    return series.where(series.isna(), series.astype(str))


def time_column(frame: pd.DataFrame, name: str, role: str = "time") -> pd.Series:
    """The column ``name`` as naive UTC datetimes (ISO 8601 text, or datetimes as stored);
    numbers are taken as they are (a period index), checked as :func:`check_finite` does.

    Times with a UTC offset or a time zone are converted to UTC and the zone dropped, so
    offsets that differ between rows (as across a daylight-saving change) still make one
    datetime column that orders and subtracts; text without an offset is read as UTC.
    400 ``not_a_time`` when a value is neither a time nor a number, and ``all_missing`` /
    ``missing_time`` / ``duplicate_time`` when the times are missing or repeat."""
    import pandas as pd

    series = column(frame, name, role)
    if series.isna().any():
        raise InvalidRequestError(
            f"Column '{name}' given as {role} has missing times.",
            param=f"params.{role}",
            code="all_missing" if series.isna().all() else "missing_time",
        )
    if pd.api.types.is_numeric_dtype(series) and series.dtype != bool:
        times = series.astype(float)
        check_finite(times, name, role)
    else:
        times = _naive_utc(series, name, role)
    repeated = times.duplicated()
    if repeated.any():
        raise InvalidRequestError(
            f"Column '{name}' given as {role} repeats a time ({times[repeated].iloc[0]}).",
            param=f"params.{role}",
            code="duplicate_time",
        )
    return times


def _naive_utc(series: pd.Series, name: str, role: str) -> pd.Series:
    """Datetimes, or ISO 8601 text, as naive UTC datetimes; a 400 ``not_a_time`` otherwise."""
    import pandas as pd

    times: pd.Series | None = None
    if pd.api.types.is_datetime64_any_dtype(series):
        times = series
    else:
        try:
            times = pd.to_datetime(series.astype(str), format="ISO8601", utc=True)
        except (ValueError, TypeError, OverflowError):
            times = None
    if times is not None and isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_convert(None)
    if times is None or not pd.api.types.is_datetime64_dtype(times):
        raise InvalidRequestError(
            f"Column '{name}' given as {role} must hold ISO 8601 times or numbers.",
            param=f"params.{role}",
            code="not_a_time",
        )
    return times


def require_rows(count: int, minimum: int, why: str = "this engine") -> None:
    """A 400 ``too_few_rows`` when ``count`` (rows usable after checks) is below ``minimum``."""
    if count < minimum:
        raise InvalidRequestError(
            f"{why[0].upper()}{why[1:]} needs at least {minimum} rows; the data have {count}.",
            param="data",
            code="too_few_rows",
        )


def numeric_like(series: pd.Series) -> bool:
    """Whether every present value of ``series`` reads as a number (booleans do)."""
    import pandas as pd

    if series.dtype == bool:
        return True
    values = pd.to_numeric(series, errors="coerce")
    return not bool((values.isna() & series.notna()).any())


def _number_label(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


def supervised_target(
    frame: pd.DataFrame, name: str, task: str, max_labels: int, role: str = "target"
) -> tuple[str, pd.Series]:
    """A model's target and its task: ``regression`` (floats) or ``classification`` (text
    labels; whole numbers without a decimal point). ``task`` ``auto`` takes numbers for a
    regression unless they are whole with at most ``max_labels`` distinct values."""
    series = column(frame, name, role)
    if task == "regression":
        return task, numeric(frame, name, role)
    if series.dtype != bool and numeric_like(series):
        values = numeric(frame, name, role)
        present = values.dropna()
        whole = bool((present == present.round()).all())
        if task == "auto" and not (whole and present.nunique() <= max_labels):
            return "regression", values
        return "classification", values.map(_number_label, na_action="ignore")
    return "classification", categorical(frame, name, role)


def refuse_rare_classes(
    labels: Sequence[Any], counts: Sequence[int], name: str, minimum: int, role: str = "target"
) -> None:
    """400 ``rare_class`` naming the classes of column ``name`` with fewer than ``minimum``
    rows (``labels`` and their ``counts``): a model cannot learn, or be checked on, them."""
    rare = [
        f"'{label}' ({count})"
        for label, count in zip(labels, counts, strict=True)
        if count < minimum
    ]
    if rare:
        raise InvalidRequestError(
            f"Each class of {role} '{name}' needs at least {minimum} rows; these have fewer: "
            f"{', '.join(rare[:10])}.",
            param=f"params.{role}",
            code="rare_class",
        )
