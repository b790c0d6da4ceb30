"""What the detectors (detectors.py) and the precedent memory (precedent_memory.py) both read: a
series' parameters from its first rows (interval, windows), the time units, the Student-t tail grid
and the rolling medians of a series. Its own module so that neither imports the other both ways."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

DAY, WEEK = 86_400.0, 7 * 86_400.0
# Rows whose parameters (sampling interval, windows) come from the first rows: scored 0.
WARMUP = 32
TAIL_QUANTILE = 0.995

Array = NDArray[np.float64]
Rows = NDArray[np.integer[Any]]


@dataclass(frozen=True)
class Parameters:
    """Derived from the first WARMUP rows only (so they are the same for any prefix)."""

    interval: float
    long_window: int
    short_window: int
    shift_window: int
    suppression_points: float

    @property
    def warmup(self) -> int:
        """Rows scored 0: the parameters' rows, then until the short window is full (a handful of
        points say little of a series' spread, and early alarms are false ones)."""
        return max(WARMUP, self.short_window)

    @classmethod
    def from_times(cls, times: Array) -> Parameters:
        head = np.diff(times[:WARMUP])
        interval = float(np.median(head[head > 0])) if np.any(head > 0) else 60.0
        per_day = DAY / interval
        long_window = int(min(max(per_day, 96), 1440))
        return cls(interval=interval, long_window=long_window, short_window=max(long_window // 8, 24),
                   shift_window=max(3, min(long_window // 48, 6)), suppression_points=max(long_window / 8, 6))



@cache
def _t_grid() -> tuple[Array, Array]:
    """Degrees of freedom (200 down to 1) and, increasing, the q99.5 of |x - median| over the robust
    sigma (1.4826 MAD) of a Student-t with them: 2.83 at df 200 (a Gaussian: 2.81), 6.6 at df 3, 86
    for a Cauchy; np.interp reads df back from a ratio. Lazy: scipy is imported by the scorers
    only, not by everything that imports this module (the API registers the model kind)."""
    from scipy.special import stdtrit

    df: Array = np.geomspace(200.0, 1.0, 64)
    ratio: Array = stdtrit(df, 0.5 + TAIL_QUANTILE / 2) / (stdtrit(df, 0.75) / 0.6745)
    return df, ratio



def _rolling_medians(values: Array, m: int) -> Array:
    """The median of each m consecutive values (the first ends at row m - 1)."""
    medians: Array = np.median(np.lib.stride_tricks.sliding_window_view(values, m), axis=1)
    return medians



@dataclass(frozen=True)
class Calibration:
    """z -> score: 0 up to `floor`, then 1 - exp(-((z - floor) / spread)^2)."""

    floor: float
    spread: float

    def score(self, z: Array) -> Array:
        excess = np.maximum(np.nan_to_num(z, nan=0.0, posinf=1e6) - self.floor, 0.0) / self.spread
        result: Array = 1.0 - np.exp(-(excess**2))
        return result


CALIBRATION: dict[str, Calibration] = {
    "robust_z": Calibration(3.5, 2.0),
    "iqr": Calibration(1.5, 2.5),
    "spike": Calibration(3.5, 2.5),
    "seasonal": Calibration(3.5, 2.0),
    "seasonal_drift": Calibration(5.5, 2.0),
    "level_shift": Calibration(4.0, 2.0),
    "level_change": Calibration(5.0, 2.0),
    "slope": Calibration(6.5, 2.0),
    "season_stopped": Calibration(4.5, 2.0),
    "flatline": Calibration(1.0, 1.0),
    "drift": Calibration(7.0, 3.0),
}
ROLLING_ZSCORE = Calibration(2.5, 3.0)
