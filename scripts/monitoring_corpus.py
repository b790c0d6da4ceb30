#!/usr/bin/env python3
"""A labelled synthetic corpus of metric series built to look like real ones (NAB / Yahoo S5
style), and the windowed scoring used to judge detectors on it (scripts/bench_monitoring.py).

Series: several sampling intervals (1 min, 5 min, 1 h) with jittered timestamps and gaps; bases
with or without a daily/weekly cycle, trends, AR(1) wander, random walks, integer counts (Poisson,
mostly zero), quantised gauges (a disk filling in steps), heavy-tailed latencies (log-normal and
Student-t noise with bursts that are *not* labelled); some series have no anomaly at all. Anomalies:
spikes, dips, level shifts (up and down), variance bursts, gradual drifts, seasonal breaks, stuck
(flat) values and drops to zero. Each anomaly has a window in the NAB way: 10 % of the series
divided by the number of anomalies, centred on the onset.

Scoring (`nab_score`): NAB's standard profile. Every row at or above the threshold is a detection;
the first detection in a window earns sigma(y) (y: its relative position, -1 at the window's
start, 0 at its end: early detection earns ~1), later ones in the window nothing; a detection
outside every window costs 0.11 (weighted by how far after the previous window it is); a missed
window costs 1. Normalised: 100 for perfect, 0 for a detector that never fires.

    .venv/bin/python scripts/monitoring_corpus.py --write DIR   # the CSVs and labels.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DAY, WEEK = 86_400.0, 604_800.0
A_TP, A_FP, A_FN = 1.0, 0.11, 1.0  # NAB's standard profile


@dataclass(frozen=True)
class Labelled:
    name: str
    times: np.ndarray
    values: np.ndarray
    windows: list[tuple[int, int]]  # [start, end) row ranges
    kinds: list[str]


def _base(rng: np.random.Generator, t: np.ndarray, style: str) -> tuple[np.ndarray, float]:
    """A normal series and its noise scale (what an anomaly is measured in)."""
    n = len(t)
    daily = np.sin(2 * np.pi * (t % DAY) / DAY - rng.uniform(0, 2 * np.pi))
    weekend = ((t // DAY + 4) % 7 >= 5).astype(float)  # 1970-01-01 was a Thursday
    if style == "seasonal":  # CPU / requests: a daily cycle, a quieter weekend, gaussian noise, a trend
        level, noise = rng.uniform(20, 200), rng.uniform(0.5, 4)
        amp = rng.uniform(4, 15) * noise
        trend = rng.uniform(-1, 1) * noise * np.arange(n) / n * 3
        return level + amp * daily - 0.3 * amp * weekend + trend + rng.normal(0, noise, n), noise
    if style == "ar1":  # temperature-like wander around a level
        noise = rng.uniform(0.3, 2)
        phi = rng.uniform(0.8, 0.97)
        e = rng.normal(0, noise, n)
        x = np.empty(n)
        x[0] = 0
        for i in range(1, n):
            x[i] = phi * x[i - 1] + e[i]
        return rng.uniform(30, 80) + x, noise / math.sqrt(1 - phi**2)
    if style == "counts":  # errors per minute: mostly zero, Poisson, a faint cycle
        rate = rng.uniform(0.2, 3) * (1 + 0.5 * daily)
        return rng.poisson(rate).astype(float), math.sqrt(float(rate.mean())) + 0.5
    if style == "staircase":  # disk used: grows in whole steps, sometimes cleaned up
        steps = (rng.random(n) < rng.uniform(0.005, 0.03)).astype(float)
        return np.round(rng.uniform(20, 60) + np.cumsum(steps)), 1.0
    if style == "latency":  # heavy tail: log-normal with unlabelled bursts of slow requests
        base = rng.uniform(50, 300)
        x = base * np.exp(rng.normal(0, rng.uniform(0.1, 0.3), n)) * (1 + 0.2 * daily)
        bursts = rng.random(n) < 0.004
        x[bursts] *= rng.uniform(1.5, 2.5, int(bursts.sum()))
        return x, base * 0.2
    if style == "student":  # Student-t noise (df 2.5-4) on a flat level
        noise = rng.uniform(0.5, 3)
        return rng.uniform(10, 100) + noise * rng.standard_t(rng.uniform(2.5, 4), n), noise * 1.5
    if style == "bursty":  # requests per minute: Poisson with a daily cycle and unlabelled bursts of traffic
        rate = rng.uniform(5, 40) * (1 + 0.6 * daily)
        bursts = np.zeros(n)
        for start in np.where(rng.random(n) < 1.0 / 300)[0]:  # a burst every few hours, 5-30 points long
            bursts[start:start + int(rng.integers(5, 30))] = rng.uniform(0.5, 1.5)
        return rng.poisson(rate * (1 + bursts)).astype(float), math.sqrt(float(rate.mean())) * 1.5
    if style == "sawtooth":  # disk used: steady growth, cleaned up every day or two back to a floor
        floor_level, growth = rng.uniform(20, 40), rng.uniform(10, 30)
        period = rng.uniform(1.0, 2.0) * DAY
        phase = (t - t[0] + rng.uniform(0, period)) % period / period
        return np.round(floor_level + growth * phase + rng.normal(0, 0.2, n), 1), growth / 20
    if style == "web":  # web traffic: a multiplicative daily and weekly cycle, holidays at ~60 %
        level = rng.uniform(200, 2000)
        shape = (1 + 0.7 * np.maximum(daily, -0.8)) * (1 - 0.35 * weekend)
        return level * shape * np.exp(rng.normal(0, 0.05, n)), level * 0.1
    if style == "noise":  # a steady gauge: gaussian noise on a level, nothing else
        noise = rng.uniform(0.5, 3)
        return rng.uniform(10, 100) + rng.normal(0, noise, n), noise
    if style == "sine":  # a daily cycle with gaussian noise (ambient temperature, a steady load)
        noise = rng.uniform(0.5, 2)
        return rng.uniform(20, 80) + rng.uniform(5, 15) * noise * daily + rng.normal(0, noise, n), noise
    if style == "flat":  # a setting or a count of replicas: one value, a step of one unit now and then
        changes = rng.choice([-1.0, 1.0], n) * (rng.random(n) < rng.uniform(0.0005, 0.003))
        return np.round(rng.uniform(3, 30)) + np.cumsum(changes), 1.0
    # random walk with a daily cycle (queue depth, memory)
    noise = rng.uniform(0.2, 1)
    return rng.uniform(100, 500) + np.cumsum(rng.normal(0, noise, n)) + 5 * noise * daily, noise * 4


def _inject(rng: np.random.Generator, t: np.ndarray, v: np.ndarray, at: int, kind: str, noise: float,
            quantised: bool, multiplicative: bool = False) -> np.ndarray:
    n = len(v)
    positive = bool(v.min() >= 0)  # a latency or a count stays >= 0 whatever happens to it
    v = v.copy()
    magnitude = rng.uniform(6, 12) * noise
    sign = rng.choice([-1.0, 1.0])
    if kind == "spike":
        v[at:at + int(rng.integers(1, 4))] += abs(magnitude) * (1.5 if quantised else 1)
    elif kind == "dip":
        v[at:at + int(rng.integers(1, 4))] -= magnitude
    elif kind == "level_shift" and multiplicative:  # traffic moves by a share of itself
        v[at:] *= 1.0 + sign * rng.uniform(0.25, 0.45)
    elif kind == "level_shift":
        v[at:] += sign * rng.uniform(4, 8) * noise
    elif kind == "variance":
        length = min(n - at, int(rng.integers(20, 80)))
        v[at:at + length] += rng.normal(0, rng.uniform(4, 6) * noise, length)
    elif kind == "drift":  # a ramp of ~10 noise units over a few hours, then staying
        ramp_rows = int(rng.integers(24, 96))
        v[at:] += sign * np.clip((np.arange(n - at) + 1) / ramp_rows, 0, 1) * rng.uniform(8, 12) * noise
    elif kind == "seasonal_break":  # the daily pattern stops for a day (a batch job did not run)
        length = min(n - at, int(DAY / max(np.median(np.diff(t)), 1.0)))
        v[at:at + length] = np.median(v[max(0, at - length):at]) + rng.normal(0, noise * 0.5, length)
    elif kind == "stuck":
        length = min(n - at, int(rng.integers(30, 120)))
        v[at:at + length] = v[at - 1]
    elif kind == "holiday":  # a whole day at about 60 % of an ordinary one (labelled, as NAB labels holidays)
        day_rows = int(DAY / max(np.median(np.diff(t)), 1.0))
        v[at:at + day_rows] *= rng.uniform(0.5, 0.7)
    elif kind == "leak":  # disk: growth several times faster than usual until the next cleanup would be due
        length = min(n - at, int(rng.integers(60, 240)))
        v[at:at + length] += np.arange(length) * noise * rng.uniform(0.3, 0.6)
        v[at + length:] += length * noise * rng.uniform(0.3, 0.6)
    elif kind == "zero":  # the source dropped to zero
        v[at:at + min(n - at, int(rng.integers(5, 30)))] = 0.0
    if quantised:
        v = np.round(v)
    return np.maximum(v, 0.0) if positive else v


# Anomalies that make sense for each base style.
_KINDS = {
    "seasonal": ("spike", "dip", "level_shift", "drift", "seasonal_break", "variance", "zero"),
    "ar1": ("spike", "level_shift", "drift", "variance", "stuck"),
    "counts": ("spike", "level_shift"),
    "staircase": ("spike", "level_shift", "stuck"),
    "latency": ("spike", "level_shift", "variance", "drift"),
    "student": ("spike", "level_shift", "dip"),
    "walk": ("spike", "level_shift", "stuck", "zero"),
}
_INTERVALS = (60.0, 300.0, 300.0, 3600.0)
# Shapes added later, generated from their own random stream after the original series, so those
# stay exactly as they were (numbers before and after stay comparable).
_MORE_KINDS = {
    "bursty": ("spike", "level_shift", "zero"),
    "sawtooth": ("leak", "spike", "stuck"),
    "web": ("holiday", "zero", "spike", "level_shift"),
}


# Series with no anomaly at all (every alarm on them is a false one), from a third stream.
_QUIET_STYLES = ("noise", "sine", "flat")


def corpus(count: int = 60, seed: int = 7, more: int = 0, quiet: int = 0) -> list[Labelled]:
    """`count` series of the original styles, then `more` of the shapes added later (bursty counts,
    sawtooth disk usage, web traffic with holidays) from a stream of their own, then `quiet` series
    without anomalies (gaussian noise, a daily sine, a flat value with rare unit steps) from a third."""
    rng = np.random.default_rng(seed)
    out = [_series(rng, i, tuple(_KINDS)[i % len(_KINDS)], _KINDS) for i in range(count)]
    more_rng = np.random.default_rng(seed + 1)
    out += [_series(more_rng, count + i, tuple(_MORE_KINDS)[i % len(_MORE_KINDS)], _MORE_KINDS) for i in range(more)]
    quiet_rng = np.random.default_rng(seed + 2)
    out += [_series(quiet_rng, count + more + i, _QUIET_STYLES[i % len(_QUIET_STYLES)], {}, anomalies=0)
            for i in range(quiet)]
    return out


def _series(rng: np.random.Generator, i: int, style: str, kinds_of: dict[str, tuple[str, ...]],
            anomalies: int | None = None) -> Labelled:
    interval = float(rng.choice(_INTERVALS))
    n = int({60.0: 4320, 300.0: 4032, 3600.0: 1680}[interval])
    # Jittered timestamps (a collector is never exactly on time) and gaps (it was down).
    t = 1_700_000_000 + np.arange(n) * interval + rng.normal(0, interval * 0.02, n)
    t = np.sort(t)
    v, noise = _base(rng, t, style)
    quantised = style in ("counts", "staircase", "bursty")
    anomalies = int(rng.choice([0, 1, 1, 2, 3])) if anomalies is None else anomalies
    onsets = sorted(int(x) for x in rng.choice(np.arange(int(0.2 * n), int(0.95 * n)), anomalies, replace=False))
    onsets = [o for k, o in enumerate(onsets) if k == 0 or o - onsets[k - 1] > 0.1 * n]
    kinds = [str(rng.choice(kinds_of[style])) for _ in onsets]
    for at, kind in zip(onsets, kinds, strict=True):
        v = _inject(rng, t, v, at, kind, noise, quantised, multiplicative=style == "web")
    if rng.random() < 0.3:  # a gap of a few hours with no rows at all
        gap = int(rng.integers(int(0.1 * n), int(0.9 * n)))
        width = int(rng.integers(5, 60))
        keep = np.ones(n, dtype=bool)
        keep[gap:gap + width] = False
        keep[onsets] = True  # labels stay on rows that exist
        index = np.cumsum(keep) - 1
        t, v = t[keep], v[keep]
        onsets = [int(index[o]) for o in onsets]
        n = len(v)
    half = int(0.1 * n / max(len(onsets), 1) / 2)
    windows = [(max(0, o - half), min(n, o + half)) for o in onsets]
    return Labelled(f"{i:03d}_{style}_{int(interval)}s", t, v, windows, kinds)


def _sigma(y: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def nab_raw(flags: np.ndarray, windows: list[tuple[int, int]]) -> float:
    """NAB's standard-profile score of one series' detections (rows flagged)."""
    score = 0.0
    detected = set()
    previous_end: int | None = None
    ordered = sorted(windows)
    for row in np.where(flags)[0].tolist():
        inside = next((k for k, (a, b) in enumerate(ordered) if a <= row < b), None)
        if inside is not None:
            if inside not in detected:
                a, b = ordered[inside]
                score += A_TP * _sigma(-(b - 1 - row) / max(b - a, 1))
                detected.add(inside)
            continue
        ends = [b for a, b in ordered if b <= row]
        previous_end = max(ends) if ends else None
        if previous_end is None:
            score -= A_FP
        else:  # a detection soon after a window costs less than one long after
            a, b = next(w for w in ordered if w[1] == previous_end)
            score += A_FP * _sigma((row - previous_end + 1) / max(b - a, 1))
    return score - A_FN * (len(ordered) - len(detected))


def nab_normalised(raw_total: float, windows_total: int) -> float:
    null = -A_FN * windows_total
    perfect = A_TP * windows_total * _sigma(-1.0)
    return 100.0 * (raw_total - null) / (perfect - null) if windows_total else 0.0


def write(directory: Path, count: int, more: int = 0, quiet: int = 0) -> None:
    labels = {}
    for series in corpus(count, more=more, quiet=quiet):
        path = directory / f"{series.name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["timestamp", "value"])
            for ts, value in zip(series.times.tolist(), series.values.tolist(), strict=True):
                writer.writerow([f"{ts:.0f}", f"{value:.4f}"])
        labels[path.name] = {"windows": series.windows, "kinds": series.kinds}
    (directory / "labels.json").write_text(json.dumps(labels, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", type=Path, required=True)
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--more", type=int, default=0, help="series of the shapes added later")
    parser.add_argument("--quiet", type=int, default=0, help="series without anomalies (noise, sine, flat)")
    args = parser.parse_args()
    write(args.write, args.count, args.more, args.quiet)
