"""The detectors of a change that lasts (detectors.py's module text describes each): a level shift,
a change of level against the series' own past changes, a change of slope, a daily pattern that
stopped; and the rule that a new level undoing an open episode (a weekend, a long outage) is that
episode's end, not news."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from shared.monitoring.detector_basics import CALIBRATION, WARMUP, Array, Parameters, Rows, _rolling_medians
from shared.monitoring.precedent_memory import EPISODE_STATISTICS, PRECEDENT_RATIOS, PrecedentMemory, recovery_rows
from shared.monitoring.window_stats import (
    CHUNK_ROWS,
    past_windows,
    quiet_nan_warnings,
    robust_stats,
    rolling_sums,
    tail_z,
    windowed,
)


def episode_end(level: Array, residual_level: Array, rows: Rows, params: Parameters, explained: NDArray[np.bool_],
                 swung: NDArray[np.bool_], candidates: NDArray[np.bool_], times: Array,
                 memory: PrecedentMemory | None = None) -> Array:
    """Per row, how new its level is (`level`, or `residual_level` where the season explains the series)
    against the largest level the other way within RECOVERY_DAYS before its last 2m rows, where that
    level opened an episode (no level in this row's direction within RECOVERY_DAYS before it: else it
    ended one, as a weekend's return does) that is still open (none since has undone it): 0 where it is no
    larger (the end of an episode whose onset was the news: traffic back after a weekend or a day-long
    outage), 1 from PRECEDENT_RATIOS' last times it on (the precedent's margin: the return is read at
    another phase of the cycle than the fall), partial between.
    Only where the past day swung by a share of itself (`swung`, as the share step): web traffic's
    weekend and its return are shares of a cycling level, while a walk's or an AR(1)'s wander down and
    back is no episode. The residual's level is the one read from the series' second day (the rough
    baseline), which holds an episode that began before three earlier days existed. `memory` (the
    scan): the levels before its `until` come from the memory's `moves` (a weekend's fall two days
    before the scan's day), the scan's own rows after it; a memory without them: the day alone."""
    factor = np.ones(len(rows))
    reach = recovery_rows(params)
    news_ratio = PRECEDENT_RATIOS[-1]
    kept = None if memory is None else {name: memory.remembered_moves(name) for name in EPISODE_STATISTICS}
    covered = 0 if memory is None else int(np.searchsorted(times, memory.until, side="right"))
    for k in np.where(candidates & swung)[0].tolist():
        name, source = ("residual_level", residual_level) if explained[k] else ("level", level)
        moves = None if kept is None else kept[name]
        row = int(rows[k])
        before = max(row - 2 * params.shift_window, 0)  # the last 2m rows are the new level's own
        if moves is None:  # the backtest; or a scan whose memory lacks the moves: it cannot see before its day
            fall = open_episode(source, before, reach, float(np.sign(source[row])), news_ratio, times,
                                 cut=kept is not None)
        else:
            fall = open_episode(source, before, reach, float(np.sign(source[row])), news_ratio, times,
                                 covered=covered, moves=moves, span=reach * params.interval)
        if fall > 0:
            factor[k] = np.clip((abs(source[row]) / fall - 1.0) / (news_ratio - 1.0), 0.0, 1.0)
    return factor


_NO_MOVES = np.empty((0, 3))


def open_episode(source: Array, before: int, reach: int, sign: float, news_ratio: float, times: Array, *,
                  covered: int = 0, moves: Array = _NO_MOVES, span: float = 0.0, cut: bool = False) -> float:
    """The largest level the other way (positive) within `reach` rows before row `before`, where it
    opened an episode still open at `before` (module `episode_end`); 0 where none is. In the scan the
    rows before `covered` are read from the memory's `moves` (time, level, the largest level the other
    way within `span` before it), those from `covered` on from `source`. `cut`: the series began before
    row 0 and no moves tell what came before (a scan's day without them), so a level whose own look-back
    reaches before row 0 may have ended an earlier episode unseen: it opens none (the level stays news)."""
    if sign == 0 or before <= 0:
        return 0.0
    at = times[before] if before < len(times) else times[-1]
    lo = max(before - reach, covered)
    past = -sign * source[lo:before]  # the rows', the other way, positive
    move_times, move_levels, move_against = moves.T
    window = (move_times >= at - span) & (move_times < at)
    other = window & (-sign * move_levels > 0)
    same = (sign * move_levels > 0) & (move_times < at)
    remembered = float((-sign * move_levels[other]).max()) if other.any() else 0.0
    scanned = float(past.max()) if len(past) else 0.0
    if max(remembered, scanned) <= 0:
        return 0.0
    if remembered >= scanned:  # the onset lies before the scan's rows (np.argmax: the first of equals)
        fall = remembered
        first = int(np.argmax(other & (-sign * move_levels >= fall)))
        later = same & (move_times > move_times[first])
        undone = bool(np.any(sign * move_levels[later] >= fall / news_ratio)) or bool(np.any(-past >= fall / news_ratio))
        if undone or move_against[first] >= fall / news_ratio:
            return 0.0
        return fall
    fall = scanned
    onset = int(np.argmax(past))
    if np.any(-past[onset + 1:] >= fall / news_ratio):
        return 0.0  # undone already: this level is a move of its own
    opened = lo + onset
    if cut and opened < reach:
        return 0.0
    look = sign * source[max(opened - reach, covered):opened]
    earlier = same & (move_times >= times[opened] - span)
    if np.any(look >= fall / news_ratio) or np.any(sign * move_levels[earlier] >= fall / news_ratio):
        return 0.0  # that level ended an episode of its own (a weekend's return): it opened none
    return fall


def level_shift_scores(values: Array, rows: Rows, params: Parameters, history: Rows, residual: Array,
                 explained: NDArray[np.bool_], floor: Array) -> Array:
    """The median of the last m points (row i included) against the level before them: on the
    seasonal residuals where the seasonal view explains the series (a daily peak is no new level).
    "Before" is both the half day and the short window before the m points, and the smaller shift
    counts: once the short window has filled with the new level (re-baselined), a sustained change
    stops scoring, so it alerts once. Only a tight recent window is a new level (not one spike)."""
    m = params.shift_window
    recent_rows = np.maximum(rows - m + 1, 0)
    residual_all = np.full(len(values), np.nan)
    residual_all[history] = residual
    shift = np.full(len(rows), np.inf)
    with quiet_nan_warnings():
        recent_block, _ = past_windows(values, rows + 1, m)
        if explained.any():
            recent_block[explained] = past_windows(residual_all, rows[explained] + 1, m)[0]
        recent = np.nanmedian(recent_block, axis=1)
        # A median of m points is measured against the spread of the past's own m-point medians,
        # not of single points: like against like, so noisy points (latency) do not hide a new
        # level (about sqrt(m) tighter for independent noise, as wide for a wandering series).
        last = int(rows.max()) + 1
        medians_m = values[:last].copy()
        if last >= m:
            medians_m[m - 1:] = _rolling_medians(values[:last], m)
        for window in (params.long_window // 2, params.short_window):
            before_median, point_scale, _, _, _ = windowed(values, recent_rows, window, floor)
            _, before_scale, _, _, _ = windowed(medians_m, recent_rows, max(window - m + 1, m), floor)
            # Until a half day precedes the m points, the medians of the few hours there are show
            # too little of the series' wander (a cycle, a walk): the single points' spread, which
            # holds the wander and the noise, bounds the scale (the first hours judged a 4-sigma
            # ramp more often a level than the same ramp later on).
            young = recent_rows < params.long_window // 2
            before_scale = np.where(young, np.maximum(before_scale, point_scale), before_scale)
            if explained.any():
                block, _ = past_windows(residual_all, recent_rows[explained], window)
                r_median, r_scale, _, _, _ = robust_stats(block, False, floor[explained])
                before_median[explained], before_scale[explained] = r_median, r_scale
            # The median of m points is not a single point: the past's tail says little of it.
            shift = np.minimum(shift, np.nan_to_num(np.abs(recent - before_median) / before_scale))
        spread = np.nanmax(np.abs(recent_block - recent[:, None]), axis=1)
    tight = spread < np.abs(recent - before_median)
    # A residual's new level is news only if the values moved, not the profile under them.
    profiled = np.where(explained & tight & (shift > CALIBRATION["level_shift"].floor))[0]
    if len(profiled):
        shift[profiled] = np.where(profile_stepped(values, residual_all, rows[profiled], params.short_window + m,
                                                    recent[profiled] - before_median[profiled]), 0.0, shift[profiled])
    return np.where(tight & (recent_rows >= WARMUP), CALIBRATION["level_shift"].score(shift), 0.0)


def profile_stepped(values: Array, residual_all: Array, rows: Rows, span: int, shift: Array) -> NDArray[np.bool_]:
    """Whether a seasonal residual's new level is the profile's doing: within the last `span` rows
    (the windows the shift was measured on), the baseline (the median of earlier days at this time)
    jumped against the shift by at least half of it from one row to the next while the values moved
    less than that: a disk cleaned up at this time of an earlier day, a sawtooth whose period is not
    a day. The series kept its course; a profile of smooth days does not jump. The jump must be
    the span's one jump (at least twice any other step of the baseline there): a profile of hourly
    medians (the scan's) steps every hour by its cycle, which is no reason to mute anything."""
    index = np.maximum(rows[:, None] - np.arange(span)[None, :], 1)
    baseline = values - residual_all
    sign = np.sign(shift)[:, None]
    half = 0.5 * np.abs(shift)[:, None]
    with quiet_nan_warnings():
        steps = np.nan_to_num(baseline[index] - baseline[index - 1])
        magnitude = np.abs(steps)
        ordered = np.sort(magnitude, axis=1)
        second = ordered[:, -2:-1] if span > 1 else np.zeros((len(rows), 1))
        baseline_jump = (-sign * steps >= half) & (magnitude >= 2.0 * second)
        value_course = np.abs(values[index] - values[index - 1]) < half
    stepped: NDArray[np.bool_] = np.any(baseline_jump & value_course, axis=1)
    return stepped


def level_change_scores(values: Array, rows: Rows, params: Parameters, floor: Array) -> Array:
    """The change of level over the last m points (median of the last m against the median of the
    m before them) against the series' own past changes over m points: a staircase that climbs one
    unit at a time and jumps five, a random walk's unusual leap, a noisy series' step of a few
    noise units. The past changes end before the current m points (the change is not its own
    reference); a trend or a daily slope is in them, and a lone outlier moves no median of m >= 3."""
    m = params.shift_window
    last = int(rows.max()) + 1
    medians = np.full(last, np.nan)
    if last >= m:
        medians[m - 1:] = _rolling_medians(values[:last], m)
    change = np.full(last, np.nan)
    change[m:] = medians[m:] - medians[:-m]
    reference_rows = rows - m + 1  # the past changes: rows before the current block
    usable = reference_rows >= params.warmup  # as many past changes as the other detectors' warm-up
    result = np.zeros(len(rows))
    if usable.any():
        compact = np.nan_to_num(change, nan=0.0)
        with quiet_nan_warnings():
            c_median, c_scale, _, _, c_tail = windowed(compact, reference_rows[usable], params.long_window,
                                                        floor[usable])
        z = tail_z(compact[rows[usable]] - c_median, c_scale, c_tail)
        result[usable] = CALIBRATION["level_change"].score(z)
    return result


def _recent_rates(steps: Array, at: Rows, span: int) -> Array:
    """The median of the `span` steps up to each row of `at` (rows >= span - 1)."""
    out = np.empty(len(at))
    for start in range(0, len(at), CHUNK_ROWS):
        part = at[start:start + CHUNK_ROWS]
        out[start:start + len(part)] = np.median(steps[part[:, None] - np.arange(span)[None, :]], axis=1)
    return out


def slope_change_scores(values: Array, rows: Rows, params: Parameters, quantum: Array) -> Array:
    """A change of the rate at which the series moves (a memory leak, a disk filling faster, a
    temperature creeping up, a latency degrading over hours) against the same rate at earlier times
    of the past long window (a day; four days of an hourly series). The rate of a row is the median,
    over its last span (an eighth of the long window), of the changes across a quarter of the span
    per row: a cleanup, a restart or a spike moves a quarter of those changes and no median, while
    noise averages over a quarter span (single steps of a slow growth are noise and rounding). A
    random walk's or an AR(1)'s rate wanders as it did before; a daily cycle's steepest hours are in
    the day before. A rate no larger than the past's largest in its direction is no news (the step
    detector's cap), and the past rates end before the current span's values begin. Scored once
    half a long window of past rates exists: the scan's day of a one-minute series holds that much."""
    span, window = max(params.long_window // 8, 2 * params.shift_window), params.long_window
    stride = max(span // 8, 1)  # the past rates sampled: neighbours a few rows apart say the same
    lag = max(span // 4, 1)
    steps = np.zeros(len(values))
    steps[lag:] = (values[lag:] - values[:-lag]) / lag
    offsets = span + lag + stride * np.arange(window // stride)  # row i's past rates end at i - span - lag, then every stride
    usable = rows - span - lag >= max(params.warmup, 2 * span) + window // 2
    result = np.zeros(len(rows))
    if not usable.any():
        return result
    scored = rows[usable]
    past = scored[:, None] - offsets[None, :]
    known = past >= span + lag - 1
    if len(scored) * (len(offsets) + 1) > len(values):  # a backtest: every row's rate, once
        every = np.zeros(len(values))
        every[span - 1:] = _rolling_medians(steps, span)
        current, block = every[scored], np.where(known, every[np.maximum(past, 0)], np.nan)
    else:  # the scan's new rows: their rates and their past's only
        current = _recent_rates(steps, scored, span)
        block = np.full(past.shape, np.nan)
        block[known] = _recent_rates(steps, past[known], span)
    # A median of an integer or rounded metric's changes moves by half its quantum (per lag) at least.
    with quiet_nan_warnings():
        median, scale, _, _, _ = robust_stats(block, False, quantum[scored] / (2.0 * lag))
        deviation = current - median
        largest = np.maximum(np.nan_to_num(np.nanmax(np.sign(deviation)[:, None] * (block - median[:, None]), axis=1),
                                           nan=0.0), 0.0)
    z = np.minimum(np.abs(deviation) / scale, 3.0 * np.abs(deviation) / np.maximum(3.0 * scale, largest))
    result[usable] = CALIBRATION["slope"].score(z)
    return result


SEASON_STOP_SHARE = 0.3  # a series following less of its profile's movement than this has stopped following it
SEASON_STOP_AMPLITUDE = 3.0  # the profile's movement over the span, in residual scales: a season to follow


def season_stopped_scores(values: Array, expected: Array, rows: Rows, params: Parameters, explained: NDArray[np.bool_],
                    residual_scale: Array) -> Array:
    """The daily pattern stopped (a batch job did not run, traffic replaced by a flat line of
    retries, a sensor stuck on its mean): over the last span (three quarters of the short window)
    the values follow less than SEASON_STOP_SHARE of the profile's movement (the least-squares slope
    of the values on the expected values), where the profile moved several residual scales and the
    season explains the series. The residual alone is the cycle's own amplitude, of either sign,
    near 0 between peak and trough: no single point or level stands out. Judged by robust z against
    the same slope over the past long window, which must nearly all exist (the scan's day holds a
    one-minute series' window less one span), and a weekend's or a holiday's share of the cycle
    (half of it and more) is no stop."""
    span = max(int(0.75 * params.short_window), 6)
    result = np.zeros(len(rows))
    known = np.isfinite(expected)
    # Sums of centred values keep their precision; the centre is the first value, not a statistic of
    # the whole array, which would let later rows move an earlier row's rounding (and its score).
    centre = float(values[0]) if len(values) else 0.0
    x, e = values - centre, np.where(known, expected - centre, 0.0)
    full = rolling_sums(known.astype(np.float64), span) == span
    sx, se = rolling_sums(np.where(known, x, 0.0), span), rolling_sums(e, span)
    covariance = rolling_sums(x * e, span) - sx * se / span
    variance = rolling_sums(e * e, span) - se * se / span
    with quiet_nan_warnings():
        slope = np.where(full & (variance > 0), covariance / variance, np.nan)
        amplitude = np.sqrt(np.maximum(variance, 0.0) / span)
    candidates = np.where(explained & (slope[rows] <= SEASON_STOP_SHARE)
                          & (amplitude[rows] >= SEASON_STOP_AMPLITUDE * residual_scale))[0]
    if not len(candidates):
        return result
    at = rows[candidates]
    finite = np.concatenate([[0], np.cumsum(np.isfinite(slope))])
    past_count = finite[at] - finite[np.maximum(at - params.long_window, 0)]
    with quiet_nan_warnings():
        median, scale, _, _, _ = windowed(slope, at, params.long_window, np.full(len(at), 0.05))
    z = np.where(past_count >= params.long_window - span, (median - slope[at]) / scale, 0.0)
    result[candidates] = CALIBRATION["season_stopped"].score(z)
    return result
