#!/usr/bin/env python3
"""Does extreme value theory tell the ensemble's false single-point alarms from its hits?

For every ensemble alarm onset on the labelled corpus (scripts/monitoring_corpus.py) led by a
single-point detector (robust z, IQR, spike), the point's size is judged against the tail of its
own series' past, as SPOT does (Siffer et al. 2017): the absolute deviations of the past (up to
30 days; the value against the median of the day before it, or for a spike the step against the
past steps, in robust units) above a high threshold (the k = sqrt(n) largest) get a generalized
Pareto fit (maximum likelihood) and a Hill estimate of the tail index, and the fitted tail gives the
number of points at least this large the past should have held (n * P(X >= x)). A hit would need a
small expected count and a false alarm a large one for a mute by the tail to keep recall.

    .venv/bin/python scripts/monitoring_tail_check.py [--shapes student,latency]

Prints one row per alarm (hit or false, the shape, the row, the points of past, the point's size,
the past's largest, both tail indices and both expected counts).
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from monitoring_corpus import corpus  # noqa: E402

from shared.monitoring.detector_basics import Parameters  # noqa: E402
from shared.monitoring.detectors import REASON_THRESHOLD, score_series  # noqa: E402
from shared.monitoring.precedent_memory import PRECEDENT_DAYS  # noqa: E402
from shared.monitoring.window_stats import running_quantum, windowed  # noqa: E402

POINT_DETECTORS = ("robust_z", "iqr", "spike")


def tail_counts(past: np.ndarray, size: float) -> tuple[float, float, float, float]:
    """(Hill tail index, its expected count, GPD shape, its expected count) of points >= `size`
    among `past` (positive magnitudes), from its k = sqrt(n) largest."""
    from scipy.stats import genpareto

    n = len(past)
    k = max(5, int(math.sqrt(n)))
    top = np.sort(past)[::-1][:k + 1]
    threshold = float(top[k])
    if threshold <= 0 or size <= threshold:
        return math.nan, float(k), math.nan, float(k)
    hill = float(np.mean(np.log(top[:k] / threshold)))
    hill_count = k * (size / threshold) ** (-1.0 / hill) if hill > 0 else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shape, _, scale = genpareto.fit(top[:k] - threshold, floc=0.0)
    gpd_count = k * float(genpareto.sf(size - threshold, shape, 0.0, scale))
    return hill, hill_count, float(shape), gpd_count


def deviations(values: np.ndarray, params: Parameters, last: int) -> np.ndarray:
    """|value - median of the day before| in robust units for rows warm-up..last (0 before)."""
    rows = np.arange(params.warmup, last + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        median, scale, _, _, _ = windowed(values, rows, params.long_window, running_quantum(values)[rows])
    out = np.zeros(last + 1)
    out[rows] = np.abs(values[rows] - median) / scale
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="student,latency", help="comma-separated shapes ('all' for every one)")
    args = parser.parse_args()
    shapes = None if args.shapes == "all" else set(args.shapes.split(","))
    print("| alarm | series | row | past points | size (robust units) | past largest | Hill index | Hill count"
          " | GPD shape | GPD count |\n|---|---|---|---|---|---|---|---|---|---|")
    for series in corpus(35, more=15, quiet=6):
        if shapes is not None and series.name.split("_")[1] not in shapes:
            continue
        result = score_series(series.times, series.values)
        flags = result.combined >= REASON_THRESHOLD
        onsets = [i for i in np.where(flags)[0] if i == 0 or not flags[i - 1]]
        params = Parameters.from_times(series.times)
        memory = int(PRECEDENT_DAYS * 86_400 / params.interval)
        for row in onsets:
            reasons = result.reasons[row]
            if not reasons or reasons[0] not in POINT_DETECTORS:
                continue
            # A spike is a step: its size and its past are steps; the others a value's deviation.
            values = series.values if reasons[0] != "spike" else np.diff(series.values, prepend=series.values[0])
            sizes = deviations(values, params, int(row))
            past = sizes[max(params.warmup, row - memory):row]
            if len(past) < 10:
                continue
            hill, hill_count, shape, gpd_count = tail_counts(past, float(sizes[row]))
            hit = any(a <= row < b for a, b in series.windows)
            print(f"| {'hit' if hit else 'false'} ({reasons[0]}) | {series.name} | {row} | {len(past)} |"
                  f" {sizes[row]:.1f} | {past.max():.1f} | {hill:.2f} | {hill_count:.3g} | {shape:.2f} | {gpd_count:.3g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
