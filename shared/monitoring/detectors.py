"""The univariate detectors and their ensemble: one causal scorer for the minute scan and for
`mlstack anomaly backtest` alike.

Every statistic of point i is computed from rows before i (plus row i itself), so the score of a
row never changes when later rows arrive: the scan scores only new points and keeps the rest.

Detectors (each a score in [0, 1] from a robust z):
  robust_z   |x - median| against the past window, checked against a long window (about a day)
             and a short one (an eighth of it): a point is odd only if odd against both, so a
             level that shifted stops firing once the short window has followed it; a slow drift
             the short window follows still scores, against the long window alone, at a higher bar
  iqr        distance outside Tukey's fences of the same two windows, in IQRs
  spike      the step from the previous point against the past steps (sudden jumps inside the range);
             where the level swings by a share of itself over the day and stays well above zero (web
             traffic, a latency), also the step as a share (log x_i / x_{i-1}) against the past's shares:
             a 40 % fall at a quiet hour is smaller than the peak's noise in absolute terms. A share step
             no larger than one the other way within three days is the end of an episode (a recovery)
  seasonal   the residual against the same time on earlier days (time of day) or earlier weeks (day
             of week), only where that explains the series much better than its level (a season
             exists); there the level detectors are capped by it, so daily peaks are not alarms;
             also the residual against the day that ended a short window ago (a drift over hours)
  level_shift the median of the last few points against the median before them (a new level),
             re-baselined on the short window so a sustained change scores once (in units of the
             past's m-point medians' spread, or of single points' until a half day precedes them); or the change
             of the m-point median against the series' own past m-point changes (a jump on a
             random walk or in heavy-tailed noise). Where the level swings by a share of itself, a new
             level no larger than an open one the other way within three days ends that episode
             (traffic back after a weekend or a day-long outage)
  flatline   a run of identical values longer than any the window before it held (a stuck source)
The seasonal view judges a single point once half a long window of residuals precedes it; before
that the level detectors judge it alone (a new level of the residuals counts from the start). A
seasonal residual's break or new level is the profile's doing, not news, where the baseline jumped
against it from one row to the next while the values kept their course (a disk cleaned up at this
time of an earlier day, a sawtooth whose period is not a day).
Scales are robust and floored (the series' quantum, a quarter of its standard deviation), and
single points are measured against the past's own 99.5th percentile too; where that percentile
says the past is heavy-tailed, a Student-t fitted to it discounts the z (a latency series' daily
10-sigma requests are not alarms).
Precedent (a memory longer than the detectors' day: the whole past up to 30 days in the backtest;
in the scan the day it reads plus the daily refreshed memory of the month, PrecedentMemory): a
point's deviation, a step, a level against the half day before and a seasonal residual are muted
where the series has shown one as large, in the same direction (a point's deviation: in either
direction, the past's exceedances of this magnitude), twice before in separate hours
(a cleanup every day or two, a burst of requests every few hours, a morning ramp): a third
occurrence is a habit, not news; a third larger is news again (a point in a heavy-tailed past's
noise: up to 1.6 times larger, the margin growing with the tail). One earlier occurrence is enough
where it came at the same time a day or a week earlier (a schedule: a nightly job, Monday's rise
after the weekend; beyond its day the scan reads the hour blocks the memory keeps with their times);
for the seasonal residuals that look-back reaches the series' second day, where the residual
against the one or two earlier days there are is too rough for anything else. A fall back to the
floor the series has held (a cleanup, a counter reset) is a habit once it has been seen before; a
fall to a new level is not. A fall that undoes a climb of more than half a day (hour after hour up),
landing where the climb began, is no news even the first time (a disk's first cleanup, a log
rotated) for the step and the level; no daily cycle rises that long, and a leak of hours is shorter. A seasonal residual, or a residual's new level, that a habitual jump made within
the short window is the jump's (the residuals' own memory starts with the seasonal view's third day).
Combined: robust_z, iqr and spike are one voice; 1 - (1 - top^2)(1 - second) over the voices (one
detector alone is damped, a second that agrees lifts it); then a decaying suppression after a
notable point, so one incident reports high once (onset) and a sustained anomaly stays below 0.45
instead of a stream of alarms.

The precedent memory and its rules (`PrecedentMemory`, `precedent_factor`, `record_margin`) live in
precedent_memory.py; the series' parameters, the calibrations and the rolling statistics both read, in
detector_basics.py; the past windows' robust statistics in window_stats.py; the detectors of a change
that lasts (level shift, level change, slope, season stopped) and the episode rule in shift_detectors.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from shared.monitoring.detector_basics import (
    CALIBRATION,
    DAY,
    ROLLING_ZSCORE,
    WARMUP,
    WEEK,
    Array,
    Parameters,
    Rows,
    _rolling_medians,
)
from shared.monitoring.precedent_memory import (
    PRECEDENT_DAYS,
    PRECEDENT_FROM,
    PrecedentMemory,
    Prior,
    _block_rows,
    _past_extreme,
    _residual_statistics,
    _value_statistics,
    precedent_factor,
    record_margin,
    recovery_rows,
)
from shared.monitoring.shift_detectors import (
    episode_end,
    level_change_scores,
    level_shift_scores,
    profile_stepped,
    season_stopped_scores,
    slope_change_scores,
)
from shared.monitoring.window_stats import (
    CHUNK_ROWS,
    largest_deviation,
    past_windows,
    quiet_nan_warnings,
    row_nanmedian,
    run_lengths,
    running_quantum,
    tail_z,
    windowed,
)

DETECTORS: tuple[str, ...] = ("robust_z", "iqr", "spike", "seasonal", "season_stopped", "level_shift", "slope",
                               "flatline")
ENSEMBLE = "ensemble"
REASON_THRESHOLD = 0.5
SUPPRESS_FROM = 0.45


@dataclass
class SeriesScores:
    """Per row: the ensemble score, each detector's score, and the reasons (detectors >= 0.5,
    strongest first)."""

    combined: Array
    detectors: dict[str, Array]
    suppression: float = 0.0
    reasons: list[list[str]] = field(default_factory=list)


class LevelScores(NamedTuple):
    """Each row against its past window (`_level_scores`)."""

    z: Array  # tail-aware robust z
    fences: Array  # distance beyond the IQR fences, in IQRs
    scale: Array  # the robust scale
    z_sustained: Array  # the z of the median of the `sustained` points up to the row (a lone point moves it not)
    swung: NDArray[np.bool_]  # the window's upper quartile RELATIVE_SWING times its lower one (a cycle of a share)
    heaviness: Array  # the window's 99.5th percentile of |x - median| over the robust scale


def _level_scores(values: Array, rows: Rows, window: int, floor: Array | None = None,
                  sustained: int = 1) -> LevelScores:
    """Each row's robust z, IQR fences and scale against its past window, the window's swing and
    tail (`LevelScores`)."""
    median, scale, q1, q3, tail = windowed(values, rows, window, floor)
    x = values[rows]
    z = tail_z(x - median, scale, tail)
    iqr = np.maximum.reduce([q3 - q1, scale * 1.349, tail / 2.0])
    # The fences shrink with the robust z as the heavy tail shrinks it (the same past, the same tail).
    plain = 3.0 * np.abs(x - median) / np.maximum(3.0 * scale, tail)
    heavy = np.where(plain > 0, z / np.maximum(plain, 1e-12), 1.0)
    fences = np.maximum(np.maximum(q1 - x, x - q3), 0.0) / iqr * heavy
    recent = np.nanmedian(past_windows(values, rows + 1, sustained)[0], axis=1) if sustained > 1 else x
    return LevelScores(z, fences, scale, tail_z(recent - median, scale, tail), q3 >= RELATIVE_SWING * q1, tail / scale)


def _seasonal_baselines(times: Array, values: Array, rows: Rows, interval: float) -> tuple[Array, Array]:
    """Median of the values at the same time on up to 4 earlier weeks (when >= 2 exist) or else on
    up to 7 earlier days (when >= 3 exist); NaN where neither exists yet. And the rough one of the
    first days: the same with one or two earlier days too."""
    tolerance = 1.5 * interval

    def lagged(lag: float) -> Array:
        target = times[rows] - lag
        found = np.searchsorted(times, target, side="right") - 1
        ok = (found >= 0) & (target - times[np.maximum(found, 0)] <= tolerance)
        return np.where(ok, values[np.maximum(found, 0)], np.nan)

    if len(times) == 0 or times[-1] - times[0] < 3 * DAY - tolerance:
        # Fewer than three earlier days: no baseline anywhere, and nothing a rough one would serve
        # (the scan's day without a trained profile costs nothing here).
        return np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    weekly = np.column_stack([lagged(k * WEEK) for k in range(1, 5)])
    daily = np.column_stack([lagged(k * DAY) for k in range(1, 8)])
    weekly_median, weekly_count = row_nanmedian(weekly)
    daily_median, daily_count = row_nanmedian(daily)
    weekly = np.where(weekly_count >= 2, weekly_median, np.nan)
    return (np.where(np.isnan(weekly) & (daily_count >= 3), daily_median, weekly),
            np.where(np.isnan(weekly) & (daily_count >= 1), daily_median, weekly))


def _lagged_z(values: Array, rows: Rows, params: Parameters, floor: Array) -> Array:
    """Robust z of each row against the long window that ended a short window earlier: a ramp over
    a few hours against the level before it began (the ramp is not its own reference)."""
    lag = params.short_window
    reference = rows - lag
    usable = reference >= params.warmup
    z = np.zeros(len(rows))
    if usable.any():
        with quiet_nan_warnings():
            median, scale, _, _, tail = windowed(values, reference[usable], params.long_window, floor[usable])
        z[usable] = tail_z(values[rows[usable]] - median, scale, tail)
    return z


def _returning(values: Array, rows: Rows, params: Parameters, exclude: int, event: Array,
               candidates: NDArray[np.bool_], lowest: float | None = None) -> NDArray[np.bool_]:
    """Per row: whether its event is a fall back to the floor the series has held: the lowest median
    of m points within the precedent's memory before the last `exclude` rows, give or take a
    quarter of the fall. A cleanup back to the floor of earlier days, a counter or a log reset to
    where it started. A fall to a new level is not, nor one that stops within the range the series
    wanders in, nor a rise (a burst as high as an earlier one is no reset). The row's value is
    where the series is now (the median of a level's last points still straddles the fall).
    `lowest`: the floor of the series' past before these rows (the scan's memory)."""
    m = params.shift_window
    out = np.zeros(len(rows), dtype=bool)
    todo = np.where(candidates)[0]
    last = int(rows.max()) + 1
    if not len(todo) or last <= m:
        return out
    medians = _rolling_medians(values[:last], m)
    running = np.minimum.accumulate(medians)  # the floor from the first row: a series under 30 days
    memory = int(PRECEDENT_DAYS * DAY / params.interval)
    for k in todo.tolist():
        row = int(rows[k])
        end = row - exclude - m + 1  # medians ending before the excluded rows
        change = float(event[row])
        if change >= 0.0:
            continue
        least = math.inf if lowest is None else lowest
        if end > 0:
            least = min(least, float(running[end - 1] if end <= memory else medians[end - memory:end].min()))
        out[k] = abs(values[row] - least) <= -0.25 * change
    return out


# A climb a fall can undo: block medians that rose block after block for longer than this, which
# no daily cycle's rise lasts (a peak's outage back to the morning's level is news).
CLIMB_SECONDS = DAY / 2


def _undone_climb(values: Array, rows: Rows, params: Parameters, steps: Array, reach: int,
                  candidates: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Per row: whether the largest fall of the last `reach` rows up to it undid a steady climb: the
    hour blocks' medians before it rose block after block for longer than CLIMB_SECONDS, the fall
    is at least three quarters of that rise, and it lands where the climb began, give or take a
    quarter of the fall. A disk cleaned up, a log rotated, a counter reset after growing: the
    growth is undone, which needs no precedent to be no news, even the first time. A fall to below
    where the climb began (a new level), after a shorter climb (a daily cycle's, a leak of hours:
    the restart is news) or after a climb that paused (a jump up, then flat) is not; nor any rise."""
    block = _block_rows(params)
    out = np.zeros(len(rows), dtype=bool)
    todo = np.where(candidates)[0]
    least_blocks = int(math.floor(CLIMB_SECONDS / (block * params.interval))) + 2
    if not len(todo) or int(rows.max()) < least_blocks * block:
        return out
    ends = int(rows.max()) // block
    medians = np.median(values[:ends * block].reshape(ends, block), axis=1)
    # The first block of the rising run each block ends.
    breaks = np.concatenate([[True], medians[1:] <= medians[:-1]])
    run_start = np.maximum.accumulate(np.where(breaks, np.arange(ends), 0))
    for k in todo.tolist():
        row = int(rows[k])
        recent = np.arange(max(row - reach + 1, 1), row + 1)
        jump = int(recent[np.argmin(steps[recent])])
        fall = float(steps[jump])
        end = jump // block  # whole blocks ended before the fall
        if fall >= 0.0 or end < least_blocks:
            continue
        start = int(run_start[end - 1])
        rise = float(medians[end - 1] - medians[start])
        if end - start >= least_blocks and -fall >= 0.75 * rise:
            out[k] = abs(float(values[row]) - float(medians[start])) <= -0.25 * fall
    return out


def _jump_habit(values: Array, rows: Rows, params: Parameters, steps: Array, deviation: Array,
                candidates: NDArray[np.bool_], prior: Prior | None, lowest: float | None) -> Array:
    """Per row: how new the jump is that put a seasonal residual off (1 where no jump did). The
    residual's deviation is a jump's doing where a step of the short window up to the row (while
    the residual's windows have not followed it), in its direction, is at least half of it; a
    fall back to the floor seen once before is a habit (a cleanup at another time of day than
    earlier ones), even while the seasonal view has too few days to remember one. Other jumps are
    left to the residual's own precedent: a step as large as two earlier ones in noise can still
    be a break the residual sees clearly."""
    m = params.shift_window
    factor = np.ones(len(rows))
    todo = np.where(candidates)[0]
    if not len(todo):
        return factor
    index = np.maximum(rows[todo, None] - np.arange(params.short_window)[None, :], 0)
    sign = np.sign(deviation[todo])
    pick = np.argmax(sign[:, None] * steps[index], axis=1)
    jump_rows = index[np.arange(len(todo)), pick]
    doing = (np.sign(steps[jump_rows]) == sign) & (np.abs(steps[jump_rows]) >= 0.5 * np.abs(deviation[todo]))
    resets = _returning(values, jump_rows, params, m, steps, doing, lowest)
    factor[todo] = precedent_factor(steps, jump_rows, params, m, resets, prior, resets)
    return factor


# A series is read in shares only where its past day stayed this many quanta above zero: near
# zero (a count at its night-time trough) a share is mostly the quantum's doing.
RELATIVE_FROM_QUANTA = 10.0
# ... and where its day swung by at least this factor between its quartiles (a cycle of a share of itself).
RELATIVE_SWING = 1.5


def _relative_spike(values: Array, rows: Rows, params: Parameters, stats: dict[str, Array], quantum: Array,
                    swung: NDArray[np.bool_], prior: Prior | None, times: Array, lowest: float | None,
                    memory: PrecedentMemory | None = None) -> Array:
    """The step detector on the step's share of the level (log x_i / x_{i-1}), for rows whose past day
    stayed well above zero. Web traffic or a latency swings with its cycle by a share of itself, so
    its steps at the daily peak are several times those of the evening: against a day of absolute
    steps, a 40 % outage at a quiet hour is ordinary, while as a share it is many times any step
    of the day. It only adds (the absolute step keeps its own voice), with its own precedent in
    shares and the same resets as the absolute step (a cleanup back to the floor, an undone climb).
    `memory` (the scan): its `moves` of the share step add the steps before the scan's day."""
    out = np.zeros(len(rows))
    last = int(rows.max()) + 1
    near_zero = np.concatenate([[0], np.cumsum(values[:last] <= RELATIVE_FROM_QUANTA * quantum[:last])])
    starts = np.maximum(rows - params.long_window, 0)
    # Where the level held within a factor over the day (`swung` false: no cycle, a flat gauge), a
    # share and a step say the same, and the log's asymmetry (a dip weighs more than a rise) would
    # only add noise.
    usable = (near_zero[rows + 1] == near_zero[starts]) & (rows >= params.long_window // 2) & swung
    if not usable.any():
        return out
    shares = stats["relative_step"]
    steps = stats["step"]
    picked = rows[usable]
    floor = quantum[picked] / values[picked]  # one quantum's share of the level: a flat past's least scale
    with quiet_nan_warnings():
        median, scale, _, _, tail = windowed(shares, picked, params.long_window, floor)
    deviation = shares[picked] - median
    z = tail_z(deviation, scale, tail)
    direction = np.sign(deviation)
    # No larger than the past day's largest share step in its direction, or than one the other way
    # within RECOVERY_DAYS: the recovery from a fall of hours or days (an outage ends, a holiday's or
    # a weekend's next morning) is the episode's end, whose onset was the news.
    reach = recovery_rows(params)
    low, high = _past_extreme(shares[:last], reach, lowest=True)[picked], _past_extreme(shares[:last], reach)[picked]
    moves = None if memory is None else memory.remembered_moves("relative_step")
    if moves is not None and len(moves):  # the scan: the steps before its day, where the memory kept them
        within = (moves[:, 0] >= times[picked, None] - reach * params.interval) & (moves[:, 0] < times[picked, None])
        low = np.fmin(low, np.where(within, moves[:, 1], np.inf).min(axis=1))
        high = np.fmax(high, np.where(within, moves[:, 1], -np.inf).max(axis=1))
    undone = np.where(direction > 0, median - low, high - median)
    largest = np.maximum(largest_deviation(shares, picked, params.long_window, median, direction),
                         np.maximum(np.nan_to_num(undone, nan=0.0, neginf=0.0, posinf=0.0), 0.0))
    z = np.minimum(z, 3.0 * np.abs(deviation) / np.maximum(3.0 * scale, largest))
    score = CALIBRATION["spike"].score(z)
    jumps = score > PRECEDENT_FROM
    if jumps.any():
        resets = _returning(values, picked, params, params.shift_window, steps, jumps, lowest)
        score *= precedent_factor(shares, picked, params, params.shift_window, jumps, prior, resets, times=times)
        score = np.where(_undone_climb(values, picked, params, steps, 1, jumps), 0.0, score)
    out[usable] = score
    return out


def detector_scores(times: Array, values: Array, rows: Rows, params: Parameters,
                    baseline: Array | None = None, memory: PrecedentMemory | None = None) -> dict[str, Array]:
    """Each detector's score of `rows` (indices >= WARMUP into finite `values`, times ascending).
    `baseline`: the expected value of every row from a trained seasonal profile (the scan's
    detector state); without it, the same times on earlier days and weeks of the series itself.
    `memory`: the precedent events of the series before these rows (the scan's detector state)."""

    def prior(name: str) -> Prior | None:
        return None if memory is None else memory.prior(name, times)

    lowest = None if memory is None else memory.floor

    quantum = running_quantum(values)
    floor = quantum[rows]
    with quiet_nan_warnings():
        z_long, fence_long, scale_long, z_sustained, swung, heaviness = _level_scores(
            values, rows, params.long_window, floor, params.shift_window)
        short = _level_scores(values, rows, params.short_window, floor)
        z_short, fence_short = short.z, short.fences
    # Odd against both windows, unless the series has deviated this far twice before (a burst of
    # requests every few hours, a latency's slow minutes); or, for a slow drift the short window
    # follows, far out against the long one alone (a higher bar: half a day of history is a weaker
    # reference than both; a drift is sustained: the median of its last few points is out, which a
    # lone burst is not, and no precedent mutes it).
    point = CALIBRATION["robust_z"].score(np.minimum(z_long, z_short))
    fences = CALIBRATION["iqr"].score(np.minimum(fence_long, fence_short))
    # A point's precedents are earlier points as far out, either way (how often the past exceeded
    # this magnitude: symmetric heavy-tailed noise shows it in both directions); a sustained excursion's (the median of
    # its last m points out too: a drift in a series whose bursts are single points) are earlier
    # excursions of that median. Beyond them, a heavy-tailed past asks a point for a larger margin
    # (`record_margin`): in Student-t noise a new largest point a third beyond the second is common.
    last = int(rows.max()) + 1
    stats = _value_statistics(values[:last], params)
    notable = np.maximum(point, fences) > PRECEDENT_FROM
    habit = np.maximum(
        precedent_factor(stats["deviation"], rows, params, params.shift_window, notable, prior("deviation"),
                         two_sided=True, times=times, margin=record_margin(heaviness)),
        precedent_factor(stats["level"], rows, params, 2 * params.shift_window, notable, prior("level"), times=times)
        * CALIBRATION["robust_z"].score(z_sustained))
    scores = {"robust_z": np.maximum(point * habit, CALIBRATION["drift"].score(z_sustained)), "iqr": fences * habit}
    # Steps: row i's step is x_i - x_{i-1}; its past steps are the steps before it.
    steps = stats["step"]
    with quiet_nan_warnings():
        step_median, step_scale, _, _, step_tail = windowed(steps, rows, params.long_window, floor)
    z_step = tail_z(steps[rows] - step_median, step_scale, step_tail)
    # A step no larger than the largest of the past window's in its direction is no news, however
    # rare: a disk cleaned up once a day, a counter that resets (the 99.5th percentile ignores one
    # a day). A fall does not excuse a rise: a daily cleanup is no precedent for a spike; but a
    # fall within m points of a rise as large is the spike's return, not news.
    direction = np.sign(steps[rows] - step_median)
    largest = np.maximum(largest_deviation(steps, rows, params.long_window, step_median, direction),
                         largest_deviation(steps, rows, params.shift_window, step_median, -direction))
    z_step = np.minimum(z_step, 3.0 * np.abs(steps[rows] - step_median) / np.maximum(3.0 * step_scale, largest))
    scores["spike"] = CALIBRATION["spike"].score(z_step)
    jumps = scores["spike"] > PRECEDENT_FROM
    scores["spike"] *= precedent_factor(steps, rows, params, params.shift_window, jumps, prior("step"),
                                        _returning(values, rows, params, params.shift_window, steps, jumps, lowest),
                                        times=times)
    scores["spike"] = np.where(_undone_climb(values, rows, params, steps, 1, jumps), 0.0, scores["spike"])
    scores["spike"] = np.maximum(scores["spike"], _relative_spike(values, rows, params, stats, quantum, swung,
                                                                  prior("relative_step"), times, lowest, memory))

    # Seasonal residuals for every row up to the last scored one (their past is needed too).
    history = np.arange(last)
    if baseline is None:
        expected, rough = _seasonal_baselines(times, values, history, params.interval)
    else:
        expected = rough = baseline[history]
    residual = values[history] - expected
    known = ~np.isnan(residual)
    seasonal = np.zeros(len(rows))
    explained = np.zeros(len(rows), dtype=bool)
    judged = np.zeros(len(rows), dtype=bool)
    deviation = np.zeros(len(rows))  # the residual against its past window's median
    residual_scale = np.zeros(len(rows))
    if known.sum() > WARMUP:
        known_rows = np.where(known)[0]
        compact = residual[known_rows]
        position = np.searchsorted(known_rows, rows)  # index into compact of each scored row
        scored = (position < len(known_rows)) & (known_rows[np.minimum(position, len(known_rows) - 1)] == rows)
        scored &= position >= WARMUP // 2
        # The seasonal view judges single points (and caps the level view's) once its residuals
        # cover half the long window: a residual scale and tail from a few hours of residuals say
        # little of a point, and their precedents begin with them, while the values' reach back to
        # the series' start (a latency's slow minute on the seasonal view's first day, as large as
        # earlier ones, is no break). A new level of the residuals is read from the start.
        judged = scored & (position >= params.long_window // 2)
        if scored.any():
            with quiet_nan_warnings():
                r_median, r_scale, _, _, r_tail = windowed(compact, position[scored], params.long_window,
                                                            floor[scored])
            z_season = tail_z(compact[position[scored]] - r_median, r_scale, r_tail)
            # The seasonal view counts only where the series has a season: its residuals much
            # tighter than the level's spread. Elsewhere earlier days are just noise to compare with.
            explained[scored] = r_scale < 0.5 * scale_long[scored]
            residual_scale[scored] = r_scale
            # A drift of the residuals over a few hours, against the day before it began (the
            # residual window has followed the ramp by then): a higher bar than a single point.
            z_drift = _lagged_z(compact, position[scored], params, floor[scored])
            season_score = np.maximum(CALIBRATION["seasonal"].score(z_season),
                                      CALIBRATION["seasonal_drift"].score(z_drift))
            seasonal[scored] = np.where(explained[scored] & judged[scored], season_score, 0.0)
            deviation[scored] = compact[position[scored]] - r_median
    # A residual off because the profile jumped (the series kept its course) is no seasonal break,
    # until the residual window has followed the jump (half of it).
    profiled = np.where(seasonal > PRECEDENT_FROM)[0]
    if len(profiled):
        residual_all = np.full(len(values), np.nan)
        residual_all[history] = residual
        stepped = profile_stepped(values, residual_all, rows[profiled], params.long_window // 2, deviation[profiled])
        seasonal[profiled] = np.where(stepped, 0.0, seasonal[profiled])
    # A seasonal residual as large as two earlier ones (a cleanup at another time of day than
    # yesterday's) is the series' habit; the level detectors it caps follow it.
    residual_stats = _residual_statistics(np.nan_to_num(residual), params)
    # Whether the same happened at this time a day or a week earlier is read back to the second
    # day: before three earlier days exist, the residual against the one or two there are is too
    # rough to judge by or to count as a precedent, but a schedule's last occurrence shows in it
    # (the first weekend's fall, for the second's).
    phase_stats = residual_stats if baseline is not None else _residual_statistics(
        np.nan_to_num(values[history] - rough), params)
    scores["seasonal"] = seasonal * precedent_factor(residual_stats["residual_deviation"], rows, params,
                                                     params.shift_window, seasonal > PRECEDENT_FROM,
                                                     prior("residual_deviation"), times=times,
                                                     phase_stat=phase_stats["residual_deviation"])
    scores["seasonal"] *= _jump_habit(values, rows, params, steps, deviation, scores["seasonal"] > PRECEDENT_FROM,
                                      prior("step"), lowest)
    for name in ("robust_z", "iqr"):
        scores[name] = np.where(explained & judged, np.minimum(scores[name], scores["seasonal"]), scores[name])

    scores["level_shift"] = level_shift_scores(values, rows, params, history, residual, explained, floor)
    scores["level_shift"] = np.maximum(scores["level_shift"], level_change_scores(values, rows, params, floor))
    # Precedents: on the values, or on the seasonal residuals where the season explains the series.
    notable = scores["level_shift"] > PRECEDENT_FROM
    for name, stat, phase_stat, where in (("level", stats["level"], None, ~explained),
                                          ("residual_level", residual_stats["residual_level"],
                                           phase_stats["residual_level"], explained)):
        returning = _returning(values, rows, params, 2 * params.shift_window, stat, notable & where, lowest)
        scores["level_shift"] *= precedent_factor(stat, rows, params, 2 * params.shift_window, notable & where,
                                                  prior(name), returning, times=times, phase_stat=phase_stat)
    # A new level no larger than an open one the other way within RECOVERY_DAYS ends that episode (a
    # weekend, a long outage), as the share step reads its steps: the episode's onset was the news.
    scores["level_shift"] *= episode_end(stats["level"], phase_stats["residual_level"], rows, params, explained,
                                          swung, scores["level_shift"] > PRECEDENT_FROM, times, memory)
    # A residual's new level that a habitual jump made (the residuals' own memory starts with the
    # seasonal view's third day).
    scores["level_shift"] *= _jump_habit(values, rows, params, steps, residual_stats["residual_level"][rows],
                                         notable & explained, prior("step"), lowest)
    notable = scores["level_shift"] > PRECEDENT_FROM
    scores["level_shift"] = np.where(_undone_climb(values, rows, params, steps, params.short_window, notable), 0.0, scores["level_shift"])
    scores["slope"] = slope_change_scores(values[:last], rows, params, quantum)
    scores["season_stopped"] = season_stopped_scores(values[:last], expected, rows, params, explained, residual_scale)

    # Flat line: a run longer than twice the longest run of the window before the run began
    # (and >= 5 points): the run itself is not its own precedent.
    runs = run_lengths(values)
    run_starts = np.maximum(rows - runs[rows].astype(np.int64) + 1, 1)
    with quiet_nan_warnings():
        longest = np.empty(len(rows))
        for start in range(0, len(rows), CHUNK_ROWS):
            part = run_starts[start:start + CHUNK_ROWS]
            block, _ = past_windows(runs, part, params.long_window)
            longest[start:start + len(part)] = np.nan_to_num(np.nanmax(block, axis=1), nan=1.0)
    ratio = runs[rows] / np.maximum(2.0 * longest, 5.0)
    scores["flatline"] = np.where((ratio >= 1.0) & (run_starts >= params.short_window), CALIBRATION["flatline"].score(ratio * 2.0), 0.0)
    return scores


# Detectors that read the same evidence count as one voice when they agree: a lone outlier is a
# robust z, an IQR fence and a step at once.
_FAMILIES: tuple[tuple[str, ...], ...] = (("robust_z", "iqr", "spike"),)


def combine(scores: dict[str, Array]) -> Array:
    """One score from the detectors': 1 - (1 - top^2)(1 - second), over families (robust z and IQR
    are one). A detector alone is damped (0.71 -> 0.5, 0.8 -> 0.64): one noisy detector reaches the
    scan's alert threshold (0.5) only when it is confident; a second that agrees lifts it."""
    grouped = {name for family in _FAMILIES for name in family}
    voices = [np.maximum.reduce([scores[name] for name in family]) for family in _FAMILIES
              if all(name in scores for name in family)]
    voices += [value for name, value in scores.items() if name not in grouped]
    stacked = np.sort(np.vstack(voices), axis=0)
    top, second = stacked[-1], stacked[-2]
    result: Array = 1.0 - (1.0 - top**2) * (1.0 - second)
    return result


def suppress(raw: Array, params: Parameters, state: float = 0.0) -> tuple[Array, float]:
    """Decaying suppression after a reported point: final_i = raw_i * (1 - s_i),
    s_i = max(s_{i-1} * decay, g(final_{i-1})) with g(f) = clip((f - 0.2) / 0.3, 0, 1) for a
    notable point (f >= 0.45), else 0: a rising anomaly's early, faint scores do not mute its onset,
    and a sustained anomaly saw-tooths between about 0.2 and 0.45 (below the alert threshold)
    instead of alerting every minute. Returns the finals and the state after."""
    decay = math.exp(-1.0 / params.suppression_points)
    final = np.empty(len(raw))
    s = state
    for i, value in enumerate(raw.tolist()):
        f = value * (1.0 - s)
        final[i] = f
        s = max(s * decay, min(1.0, (f - 0.2) / 0.3) if f >= SUPPRESS_FROM else 0.0)
    return final, s


def score_series(times: Sequence[float] | Array, values: Sequence[float] | Array, *, start: int = 0,
                 state: float = 0.0, detector: str = ENSEMBLE, baseline: Array | None = None,
                 extra: dict[str, Array] | None = None, memory: PrecedentMemory | None = None) -> SeriesScores:
    """Scores of rows `start`.. of one series (timestamps in seconds, ascending). Rows before
    `start` are history only; `state` is the suppression after row start - 1 (the scan keeps it).
    Rows with a missing value, and the warm-up rows, score 0. `baseline` (per row) replaces the
    seasonal lags; `extra` adds other detectors' scores of rows `start`.. (the host's forest);
    `memory` adds the precedent events of the series' past before these times (the detector state)."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    finite = np.isfinite(v)
    out_rows = np.arange(start, n)
    combined = np.zeros(len(out_rows))
    per_detector = {name: np.zeros(len(out_rows)) for name in DETECTORS}
    for name, given in (extra or {}).items():
        per_detector[name] = np.nan_to_num(np.asarray(given, dtype=np.float64))
    valid = np.where(finite)[0]
    if len(valid) <= WARMUP or start >= n:
        return SeriesScores(combined, per_detector, state, [[] for _ in out_rows])
    tv, vv = t[valid], v[valid]
    params = Parameters.from_times(tv)
    # Compact index of each output row among the valid rows; only valid rows past warm-up score.
    compact = np.searchsorted(valid, out_rows)
    is_valid = finite[out_rows]
    scorable = is_valid & (compact >= params.warmup)
    rows = compact[scorable]
    if len(rows):
        scores = detector_scores(tv, vv, rows, params, None if baseline is None else np.asarray(baseline)[valid],
                                 memory)
        for name in DETECTORS:
            per_detector[name][scorable] = scores[name]
        for name in extra or {}:
            scores[name] = per_detector[name][scorable]
        raw = combine(scores) if detector == ENSEMBLE else scores[detector]
        combined[scorable] = raw
    final, new_state = suppress(combined, params, state)
    if detector != ENSEMBLE:
        final, new_state = combined, 0.0  # a single detector is reported as it is
    # Reasons strongest first: the first names the detector an alert is deduplicated by.
    reasons = [[name for _, name in sorted(((-float(scores_of[k]), name) for name, scores_of in per_detector.items()
                                            if scores_of[k] >= REASON_THRESHOLD))]
               for k in range(len(out_rows))]
    return SeriesScores(np.clip(final, 0.0, 1.0), per_detector, new_state, reasons)


def rolling_zscore(values: Sequence[float] | Array, window: int = 60) -> Array:
    """The naive baseline the benchmark compares against: |x - mean| / std of the past `window`
    points, with a fixed mapping (0.5 at z = 5) that does not follow the detectors' tuning. Causal too."""
    v = np.asarray(values, dtype=np.float64)
    out = np.zeros(len(v))
    for i in range(WARMUP, len(v)):
        past = v[max(0, i - window):i]
        past = past[np.isfinite(past)]
        if len(past) > 2 and np.isfinite(v[i]):
            std = float(past.std()) or 1e-9
            out[i] = abs(v[i] - past.mean()) / std
    return ROLLING_ZSCORE.score(out)


def robust_standardise(values: Sequence[float] | Array, rows: Rows, window: int = 1440) -> Array:
    """Signed robust z of `rows` against each one's past `window` values (clipped to +-50): the
    Isolation Forest's inputs, the same for training and the scan."""
    v = np.asarray(values, dtype=np.float64)
    with quiet_nan_warnings():
        median, scale, _, _, _ = windowed(v, rows, window)
    result: Array = np.clip(np.nan_to_num((v[rows] - median) / scale), -50.0, 50.0)
    return result
