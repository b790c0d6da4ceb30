"""numpy helpers the batch paths share."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def sorted_distinct(values: NDArray[Any]) -> NDArray[Any]:
    """The sorted distinct values, as `np.unique(values)` gives them (NaNs collapse into one).

    Why not np.unique itself: in numpy 2 its plain form imports numpy.ma on first use (it asks
    whether the array is masked), about 20 ms of a `mlstack score conflict` run's start."""
    ordered = np.sort(values, axis=None)
    if not len(ordered):
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    if ordered.dtype.kind in "fc" and np.isnan(ordered[-1]):
        keep[int(np.argmax(np.isnan(ordered))) + 1:] = False  # NaNs sort last
    return ordered[keep]
