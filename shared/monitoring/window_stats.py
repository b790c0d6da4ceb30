"""Robust statistics of each row's past window, computed in vectorised blocks, and the small array
helpers every detector reads (detectors.py, shift_detectors.py). Each statistic of row i comes from
the rows before it, so a row's value never changes when later rows arrive."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from shared.monitoring.detector_basics import TAIL_QUANTILE, Array, Rows, _t_grid

CHUNK_ROWS = 2048  # rows per vectorised block: bounds the (rows x window) temporaries


def past_windows(values: Array, rows: Rows, window: int) -> tuple[Array, Array]:
    """For each row i in `rows` (all >= 1), the up-to-`window` values before it, right-aligned in a
    (len(rows), window) matrix padded with NaN, and how many are real."""
    padded = np.concatenate([np.full(window, np.nan), values])
    starts = rows  # row i's past is padded[i : i + window] == values[i - window : i]
    index = starts[:, None] + np.arange(window)[None, :]
    block = padded[index]
    counts = np.minimum(rows, window).astype(np.float64)
    return block, counts


def sorted_quantiles(ordered: Array, levels: Sequence[float]) -> list[Array]:
    """Quantiles of each row of a row-sorted NaN-free matrix, linearly interpolated (numpy's
    default method)."""
    last = ordered.shape[1] - 1
    out = []
    for level in levels:
        position = level * last
        low = int(math.floor(position))
        high = min(low + 1, last)
        out.append(ordered[:, low] + (ordered[:, high] - ordered[:, low]) * (position - low))
    return out


def nan_sorted_quantiles(ordered: Array, levels: Sequence[float]) -> list[Array]:
    """Quantiles of each row of a row-sorted matrix whose NaNs sort last, over its real values,
    linearly interpolated as numpy's nanquantile does (NaN where a row has none). numpy's own
    falls back to one Python call per row once any row holds a NaN: most of a backtest's time."""
    count = np.count_nonzero(~np.isnan(ordered), axis=1)
    last = np.maximum(count - 1, 0)
    out = []
    for level in levels:
        position = level * last
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, last)
        below = np.take_along_axis(ordered, low[:, None], axis=1)[:, 0]
        above = np.take_along_axis(ordered, high[:, None], axis=1)[:, 0]
        out.append(np.where(count > 0, below + (above - below) * (position - low), np.nan))
    return out


def robust_stats(block: Array, full: bool, floor: Array | float = 0.0) -> tuple[Array, Array, Array, Array, Array]:
    """Median, robust scale, Q1, Q3 and the tail (99.5th percentile of |x - median|) of each row of
    `block` (NaN-padded unless `full`). `floor`: the least scale of each row (the series' quantum)."""
    if full:
        # One sort per block, then order statistics by index: numpy's quantile calls cost more
        # in overhead than the sort for the scan's single rows.
        ordered = np.sort(block, axis=1)
        median, q1, q3 = sorted_quantiles(ordered, (0.5, 0.25, 0.75))
        mad, tail = sorted_quantiles(np.sort(np.abs(block - median[:, None]), axis=1), (0.5, TAIL_QUANTILE))
        std = np.std(block, axis=1)
    else:
        ordered = np.sort(block, axis=1)
        median, q1, q3 = nan_sorted_quantiles(ordered, (0.5, 0.25, 0.75))
        mad, tail = nan_sorted_quantiles(np.sort(np.abs(block - median[:, None]), axis=1), (0.5, TAIL_QUANTILE))
        std = np.nanstd(block, axis=1)
    # MAD is 0 for a series that is mostly one value (counters at 0): a quarter of the standard
    # deviation keeps rare excursions from being infinitely surprising, and the quantum (the
    # smallest step the series has taken) keeps one step of an integer or rounded metric from
    # being many "robust units"; the last term only guards the division for a constant past.
    scale = np.maximum.reduce([1.4826 * mad, (q3 - q1) / 1.349, 0.25 * std, np.broadcast_to(floor, mad.shape),
                               1e-9 * (1.0 + np.abs(median))])
    return median, scale, q1, q3, tail


def windowed(values: Array, rows: Rows, window: int,
              floor: Array | None = None) -> tuple[Array, Array, Array, Array, Array]:
    """Robust statistics of the past `window` values of each row, in blocks."""
    out = [np.empty(len(rows)) for _ in range(5)]
    for start in range(0, len(rows), CHUNK_ROWS):
        part = rows[start:start + CHUNK_ROWS]
        # Columns older than every row's past are all padding: dropping them changes no statistic
        # and lets a block whose rows all have a full (shorter) past take the fast NaN-free path
        # (the scan's single new row of a day-long history, one point short of the long window).
        width = min(window, int(part.max()))
        block, _ = past_windows(values, part, width)
        full = bool(part.min() >= width)
        stats = robust_stats(block, full, 0.0 if floor is None else floor[start:start + CHUNK_ROWS])
        for target, value in zip(out, stats, strict=True):
            target[start:start + len(part)] = value
    return out[0], out[1], out[2], out[3], out[4]


def tail_z(deviation: Array, scale: Array, tail: Array) -> Array:
    """|deviation| in robust units, discounted for a heavy-tailed past.

    The plain bound is 3|dev| / max(3 scale, tail): a point must stand out against the past's own
    99.5th percentile too. A heavy tail is also extrapolated: a Student-t fitted to the past (its
    degrees of freedom from how far the 99.5th percentile lies beyond the robust sigma, 2.8 sigmas
    for a Gaussian; its scale from the robust sigma) gives the point's two-sided tail probability,
    read back as a Gaussian-equivalent z. On a latency series whose slow requests reach 6 sigmas
    every day (df about 3), 10 sigmas is a once-in-a-few-hundred event, not an alarm. A day's
    99.5th percentile rests on a handful of points, so the t's verdict gets half the weight
    (geometric mean with the bound). A Gaussian past gives the plain robust z."""
    from scipy.special import ndtri, stdtr, stdtrit

    magnitude = np.abs(deviation)
    bound: Array = 3.0 * magnitude / np.maximum(3.0 * scale, tail)
    df_grid, ratio_grid = _t_grid()
    heavy = np.nan_to_num(tail / scale, nan=0.0) > ratio_grid[0]
    if heavy.any():
        df = np.interp(tail[heavy] / scale[heavy], ratio_grid, df_grid)
        t_units = magnitude[heavy] / (scale[heavy] * 0.6745 / stdtrit(df, 0.75))
        z_equivalent = -ndtri(np.maximum(stdtr(df, -t_units), 1e-300))  # P(T > t) = P(Z > z)
        bound[heavy] = np.minimum(bound[heavy], np.sqrt(bound[heavy] * z_equivalent))
    return bound


def largest_deviation(values: Array, rows: Rows, window: int, centre: Array, sign: Array) -> Array:
    """max sign * (x - centre) over the past `window` values of each row: its largest deviation in
    the direction of `sign` (0 where it has none)."""
    out = np.zeros(len(rows))
    for start in range(0, len(rows), CHUNK_ROWS):
        part = rows[start:start + CHUNK_ROWS]
        width = min(window, int(part.max()))
        block, _ = past_windows(values, part, width)
        signs = sign[start:start + CHUNK_ROWS, None]
        with quiet_nan_warnings():
            out[start:start + len(part)] = np.maximum(np.nan_to_num(
                np.nanmax(signs * (block - centre[start:start + CHUNK_ROWS, None]), axis=1), nan=0.0), 0.0)
    return out


def running_quantum(values: Array) -> Array:
    """Per row: the smallest non-zero step of the series up to it (1 for counts, 0.1 for a
    rounded gauge); 0 until one is seen. Causal: a running minimum."""
    steps = np.abs(np.diff(values, prepend=values[:1]))
    steps = np.where(steps > 0, steps, np.inf)
    running = np.minimum.accumulate(steps)
    result: Array = np.where(np.isfinite(running), running, 0.0)
    return result


def row_nanmedian(matrix: Array) -> tuple[Array, Array]:
    """Median of each row's non-NaN values (NaN where none) and their count; NaN sorts last, so
    the median is read from the sorted row at the count's middle (no per-row warnings)."""
    ordered = np.sort(matrix, axis=1)
    count = np.sum(~np.isnan(matrix), axis=1)
    rows = np.arange(len(matrix))
    low = ordered[rows, np.maximum((count - 1) // 2, 0)]
    high = ordered[rows, np.maximum(count // 2, 0)]
    high = np.where(count % 2 == 1, low, high)
    return np.where(count > 0, (low + high) / 2.0, np.nan), count


@contextmanager
def quiet_nan_warnings() -> Iterator[None]:
    """All-NaN slices are expected (no earlier day yet): silence numpy's RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def run_lengths(values: Array) -> Array:
    """Length of the run of identical values ending at each row."""
    same = np.concatenate([[False], values[1:] == values[:-1]])
    # Cumulative count that restarts at each change, without a Python loop.
    change_points = np.where(~same)[0]
    starts = np.repeat(change_points, np.diff(np.append(change_points, len(values))))
    runs = np.arange(len(values)) - starts + 1.0
    return runs


def rolling_sums(values: Array, span: int) -> Array:
    """The sum of the `span` values up to each row (NaN before the first full span)."""
    sums = np.concatenate([[0.0], np.cumsum(values)])
    out = np.full(len(values), np.nan)
    out[span - 1:] = sums[span:] - sums[:-span]
    return out
