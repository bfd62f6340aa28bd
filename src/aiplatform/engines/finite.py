"""Client numbers made into float32 arrays, refused when they do not fit.

JSON numbers such as ``1e308`` decode to finite Python floats but overflow float32 to
infinity (and ``1e999`` is infinite already); left in, they turn similarities, norms and
timelines into NaN, which a JSON response can only carry as ``null``. Every place where floats
from a request become a float32 array goes through :func:`finite_float32`, so such a request is
a 400 naming its field instead of a 200 with ``null`` in it or an empty answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from aiplatform.errors import InvalidRequestError

__all__ = ["finite_float32"]

#: The largest magnitude a float32 holds.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def finite_float32(
    values: Sequence[float] | Sequence[Sequence[float]], param: str
) -> npt.NDArray[np.float32]:
    """``values`` as a float32 array; a 400 naming ``param`` when any value is not a finite
    float32 (NaN, infinite, or beyond about 3.4e38 in magnitude)."""
    with np.errstate(over="ignore", invalid="ignore"):
        array = np.asarray(values, dtype=np.float32)
    if not np.isfinite(array).all():
        raise InvalidRequestError(
            f"'{param}' holds a number that is not finite in float32 (NaN, infinite, or beyond "
            f"±{FLOAT32_MAX:.4g}).",
            param=param,
        )
    return array
