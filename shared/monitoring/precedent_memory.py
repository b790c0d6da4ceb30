"""The precedent machinery: a series' memory of its past events and the rules that read it.

`precedent_factor` says how new an event is (a step, a level, a point's deviation, a seasonal
residual) against the same statistic's earlier events in hour blocks (`record_margin`: the larger
margin a heavy-tailed past asks of a point); `precedent_memory` reduces a series' month to a
`PrecedentMemory` (its two largest separate rises and falls per statistic, its floor, the calendar
blocks of its last week and the `Move`s an episode's end is read from), which refresh-precedents
(precedents.py) stores daily (precedents_repository.py) and the minute scan hands to the detectors
as a `Prior` per statistic. The signed statistics compared here (`_value_statistics`,
`_residual_statistics`) are the detectors' and the memory's alike, as is an episode's reach
(`RECOVERY_DAYS`, `_past_extreme`). How the detectors use all this is told in detectors.py's
docstring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.monitoring.detector_basics import DAY, WARMUP, WEEK, Array, Parameters, Rows, _rolling_medians, _t_grid

# Precedent: the memory searched for earlier events like the current one (the backtest reads the
# whole past; the scan its day plus the detector state's PrecedentMemory), and the ratios by which
# the current one must exceed the second largest of them to be news (1.0: no larger than two
# earlier ones, muted; 1.3 and more: as scored).
PRECEDENT_DAYS = 30.0
PRECEDENT_RATIOS = (1.05, 1.1, 1.2, 1.3)
PRECEDENT_FROM = 0.05  # rows scoring less have nothing to lose
# A point's margin over the past's second event grows with how heavy the past's tail is: with a
# Pareto-like tail of index df, going a factor c beyond an earlier event is c^-df as likely as
# reaching it. Full news where that is as unlikely as 1.3 is for a tail of index MARGIN_TAIL_INDEX
# (c = 1.3^(MARGIN_TAIL_INDEX / df): 1.3 for df >= 7.5, 1.48 at df 5), at most MARGIN_MOST (df 4.2 and less):
# a day's 99.5th percentile over a robust scale reads a stretch at zero or a burst as a tail of
# index 1-2, which says nothing of the next point.
MARGIN_TAIL_INDEX = 7.5
MARGIN_MOST = 1.6
MARGIN_STEP = 0.01  # the ratios tried beyond PRECEDENT_RATIOS: the factor is read from the ratio passed


def record_margin(heaviness: Array) -> Array:
    """Per row, the ratio over the past's second separate event at which a point's deviation is full
    news, from `heaviness`: the past window's 99.5th percentile of |x - median| over its robust scale
    (2.8 for a Gaussian, 6.6 for a Student-t of 3 degrees of freedom), read as the t's df."""
    df_grid, ratio_grid = _t_grid()
    df = np.interp(np.nan_to_num(heaviness, nan=0.0), ratio_grid, df_grid)
    margin = np.clip(PRECEDENT_RATIOS[-1] ** (MARGIN_TAIL_INDEX / df), PRECEDENT_RATIOS[-1], MARGIN_MOST)
    # On the grid of ratios precedent_factor tries (MARGIN_STEP): a record past the last one it tries
    # is full news (off the grid it would score (top step - 1) / (margin - 1), under 1).
    stepped: Array = np.round(margin / MARGIN_STEP) * MARGIN_STEP
    return stepped



def _block_rows(params: Parameters) -> int:
    """Rows of the precedent's blocks: an hour (at least the level detectors' m points)."""
    return max(params.shift_window, int(round(3600.0 / params.interval)))


def _block_extremes(stat: Array, params: Parameters) -> tuple[Array, Array, int]:
    """The statistic's hour blocks (from row 0): each block's largest rise and largest fall
    (positive magnitudes), and the block length in rows."""
    block = _block_rows(params)
    usable = (len(stat) // block) * block
    blocks = stat[:usable].reshape(-1, block)
    return blocks.max(axis=1), -blocks.min(axis=1), block


def _separate_events(over: NDArray[np.bool_]) -> int:
    """Earlier events among blocks over a threshold: adjacent blocks over it are one event."""
    return int(over[0]) + int(np.count_nonzero(over[1:] & ~over[:-1])) if len(over) else 0


def _two_largest_events(extremes: Array) -> tuple[float, float]:
    """Of one or more blocks: the largest (the first event) and the largest threshold at which the blocks still
    hold two separate events (0 where they never do): threshold t has two when some block below t
    lies between blocks at least t, i.e. t <= min(max before it, max after it)."""
    before = np.maximum.accumulate(np.concatenate([[-np.inf], extremes[:-1]]))
    after = np.maximum.accumulate(np.concatenate([extremes[:0:-1], [-np.inf]]))[::-1]
    between = np.minimum(before, after)
    separated = between[extremes < between]
    return max(float(extremes.max()), 0.0), max(float(separated.max()), 0.0) if len(separated) else 0.0


# How far back the memory keeps the hour blocks the schedule rule may read: a week and an hour, for
# any minute until the next daily refresh (and a day's slack for one that is late).
CALENDAR_DAYS = 8.0
Block = tuple[float, float, float, float]  # first row's time, last row's time, rise, fall (0: not kept)
# A level (or a share step) that may open an episode the scan's rows end: its row's time, the signed
# value, and the largest value the other way within RECOVERY_DAYS before it (positive; 0: none).
Move = tuple[float, float, float]
# The statistics an episode's end is read from: the share step's (`_relative_spike`) and the levels' (`_episode_end`).
EPISODE_STATISTICS = ("relative_step", "level", "residual_level")


@dataclass(frozen=True)
class PrecedentMemory:
    """The precedent events of a series' past beyond the scan's day, from the detector state: per
    statistic (`_value_statistics`, `_residual_statistics`), (largest rise, second separate rise,
    largest fall, second separate fall) in `_two_largest_events`' sense; `until`: the time of the newest row they cover
    (epoch seconds). Two magnitudes are all the rule "seen twice as large" needs; `floor`, the
    lowest median of m points, is all "a fall back to the floor" needs.

    `calendar`: per statistic, the hour blocks of the last CALENDAR_DAYS the rule "once, at the same
    time a day or a week earlier" can need beyond the scan's day: only those larger than the
    second separate event in their direction (a smaller one decides nothing: at any threshold it
    reaches, the two events above already count twice). Those form one run of adjacent blocks, so
    a series keeps a handful of blocks, not 192 per statistic. None in rows stored before it: no
    look-back beyond the day (as then).

    `moves`: per statistic an episode's end is read from (EPISODE_STATISTICS), the rows before
    `until` the scan's rows can read as an episode's onset: within RECOVERY_DAYS (and the new level's
    own rows and an hour) of `until`, each at least as large as every later one in its direction
    (the largest of any range reaching to `until` is among them, at its time; one an hour block).
    A few dozen a series. None in rows stored before it: the scan's day alone (as then)."""

    until: float
    events: dict[str, tuple[float, float, float, float]]
    floor: float | None = None  # the lowest median of m points (a fall back to it is a reset); None in old rows
    calendar: dict[str, tuple[Block, ...]] | None = None
    moves: dict[str, tuple[Move, ...]] | None = None

    def remembered_moves(self, name: str) -> Array | None:
        """The statistic's `Move` rows (None: the memory kept none of it)."""
        if self.moves is None or name not in self.moves:
            return None
        return np.array(self.moves[name], dtype=np.float64).reshape(-1, 3)

    def prior(self, name: str, times: Array) -> Prior | None:
        """The statistic's events for `precedent_factor` over the rows at `times`."""
        if name not in self.events:
            return None
        blocks = None if self.calendar is None else np.array(self.calendar.get(name, ()), dtype=np.float64).reshape(-1, 4)
        return Prior(self.events[name], int(np.searchsorted(times, self.until, side="right")), blocks)

    def to_dict(self) -> dict[str, Any]:
        stored: dict[str, Any] = {"until": self.until, "events": {name: list(values) for name, values in self.events.items()}}
        if self.floor is not None:
            stored["floor"] = self.floor
        if self.calendar is not None:
            stored["calendar"] = {name: [list(b) for b in blocks] for name, blocks in self.calendar.items()}
        if self.moves is not None:
            stored["moves"] = {name: [list(move) for move in moves] for name, moves in self.moves.items()}
        return stored

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrecedentMemory:
        events = {str(name): (float(v[0]), float(v[1]), float(v[2]), float(v[3]))
                  for name, v in dict(data["events"]).items()}
        floor = data.get("floor")
        calendar = data.get("calendar")
        moves = data.get("moves")
        return cls(float(data["until"]), events, None if floor is None else float(floor),
                   None if calendar is None else {
                       str(name): tuple((float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in blocks)
                       for name, blocks in dict(calendar).items()},
                   None if moves is None else {
                       str(name): tuple((float(m[0]), float(m[1]), float(m[2])) for m in kept)
                       for name, kept in dict(moves).items()})


@dataclass(frozen=True)
class Prior:
    """One statistic's earlier events as the scan passes them to `precedent_factor`: the
    memory's four magnitudes, how many rows of the scored series it already covers (their
    blocks are not counted again), and its calendar blocks (rows of `Block`; None: none kept)."""

    events: tuple[float, float, float, float]
    covered: int
    calendar: Array | None = None

    def count(self, threshold: float, rise: bool, both: bool = False) -> int:
        """Earlier events at least `threshold` in the direction (or, `both`, either direction)."""
        kept = self.events if both else self.events[:2] if rise else self.events[2:]
        return sum(int(magnitude >= threshold) for magnitude in kept)

    def scheduled(self, at: float, reach: float, rise: bool, both: bool = False) -> float:
        """The largest remembered event (in the direction, or either) of the blocks within `reach`
        of the time `at` a day or a week earlier: the blocks `_calendar_blocks` finds in a
        series that holds that past (the one holding the time and its neighbours); 0 where none."""
        if self.calendar is None or not len(self.calendar):
            return 0.0
        first, last, rises, falls = self.calendar.T
        magnitude = np.maximum(rises, falls) if both else rises if rise else falls
        near = np.zeros(len(first), dtype=bool)
        for period in CALENDAR_PERIODS:
            near |= (first <= at - period + reach) & (last >= at - period - reach)
        return float(magnitude[near].max()) if near.any() else 0.0


def precedent_factor(stat: Array, rows: Rows, params: Parameters, exclude: int,
                     candidates: NDArray[np.bool_], prior: Prior | None = None,
                     returning: NDArray[np.bool_] | None = None, two_sided: bool = False,
                     times: Array | None = None, phase_stat: Array | None = None,
                     margin: Array | None = None) -> Array:
    """Per row, how new its event is (1: news, 0: it has happened twice before): the signed
    statistic of the event (a step, a level against the half day before, a seasonal residual)
    against the same statistic's earlier events of the same sign within the memory.

    Earlier events are hour blocks (their largest value; adjacent blocks over the threshold are one
    event), so a burst of 20 minutes is one event and a cleanup that comes every day or two, a
    burst of requests every few hours or a morning ramp is seen as a habit of the series from its
    second occurrence on, even when the last one is out of the detectors' day. The rows of the last
    `exclude` before the current one are not its precedent (they are the event itself). Only
    `candidates` (rows with a score to lose) are looked at; the others get 1. `prior` (the scan):
    the events of the past before these rows, added to those of the blocks after what it covers.
    `two_sided`: earlier events of either sign count (a point's deviation in symmetric heavy-tailed
    noise: the past's exceedances of this magnitude, wherever they pointed).
    `returning`: rows whose event brings the series back to a level it has held (a cleanup back to
    the floor, a counter reset): for them one earlier event as large is habit enough.
    `times` (the series' times, which `rows` index): one earlier event as large is habit enough too
    where it came at the same time of day a day earlier or of week a week earlier (within an hour
    block either side): a schedule (a nightly job, the weekend's fall and Monday's rise), not news.
    `phase_stat`: the statistic those blocks are read from, where it reaches back further than `stat`
    (the seasonal residuals against the first days' rough baseline).
    `margin` (per row): the ratio over the earlier events at which the event is full news, where
    it is more than PRECEDENT_RATIOS' last (a heavy-tailed past, `record_margin`)."""
    factor = np.ones(len(rows))
    highs, lows, block = _block_extremes(stat, params)
    memory = int(PRECEDENT_DAYS * DAY / params.interval) // block
    todo = np.where(candidates)[0]
    if not len(todo) or int(rows.max()) < block:
        return factor
    phases = _calendar_blocks(times, rows[todo], block, params.interval) if times is not None else None
    phase_highs, phase_lows = (highs, lows) if phase_stat is None else _block_extremes(phase_stat, params)[:2]
    first = 0 if prior is None else -(-prior.covered // block)  # the first block the prior does not cover
    least = 1 if prior is None else 0  # without a prior, no block holds no event
    for j, k in enumerate(todo.tolist()):
        row = int(rows[k])
        value = float(stat[row])
        end = max(row - exclude, 0) // block  # whole blocks ended before the excluded rows
        start = max(end - memory, first)
        past = (np.maximum(highs, lows) if two_sided else highs if value > 0 else lows)[start:end]
        if len(past) < least or value == 0.0:
            continue
        magnitude = abs(value)
        needed = 1 if returning is not None and returning[k] else 2
        # The earlier blocks at this time of day and of week: one event there is a schedule.
        in_phase = np.array([])
        if phases is not None and times is not None:
            extremes = np.maximum(phase_highs, phase_lows) if two_sided else phase_highs if value > 0 else phase_lows
            in_phase = extremes[[b for b in phases[j].tolist() if start <= b < end]]
            if prior is not None:  # the scan: the same time a day or a week before its day, remembered
                in_phase = np.append(in_phase, prior.scheduled(float(times[row]), block * params.interval,
                                                               value > 0, two_sided))
        news = 0.0
        top = PRECEDENT_RATIOS[-1] if margin is None else float(margin[k])
        beyond = np.arange(PRECEDENT_RATIOS[-1] + MARGIN_STEP, top + 1e-9, MARGIN_STEP).tolist()
        for ratio in (1.0, *PRECEDENT_RATIOS, *beyond):
            threshold = magnitude / ratio
            events = _separate_events(past >= threshold)
            if prior is not None:
                events += prior.count(threshold, value > 0, two_sided)
            if events >= needed or np.any(in_phase >= threshold):
                break
            news = ratio
        factor[k] = 0.0 if news == 0.0 else min(1.0, (news - 1.0) / (top - 1.0))
    return factor



CALENDAR_PERIODS = (DAY, WEEK)


def _calendar_blocks(times: Array, rows: Rows, block: int, interval: float) -> Rows:
    """Per row: the precedent's hour blocks around the row a day and a week earlier (the block
    holding it and its neighbours; -1 where the series has no row within a block's time of it).
    A block's time is `block` rows at the interval read from the series' first rows: nothing
    after a row decides its score."""
    span = block * interval
    out = np.full((len(rows), 3 * len(CALENDAR_PERIODS)), -1, dtype=np.int64)
    for p, period in enumerate(CALENDAR_PERIODS):
        target = times[rows] - period
        found = np.clip(np.searchsorted(times, target), 0, len(times) - 1)
        near = np.abs(times[found] - target) <= span
        centre = found // block
        for offset in (-1, 0, 1):
            out[:, 3 * p + offset + 1] = np.where(near, centre + offset, -1)
    return out



# How far back a share step the other way makes a step the end of an episode, not news: a long weekend.
RECOVERY_DAYS = 3.0


def recovery_rows(params: Parameters) -> int:
    """An episode's reach in rows: RECOVERY_DAYS at the series' sampling interval."""
    return int(RECOVERY_DAYS * DAY / params.interval)



def _past_extreme(values: Array, window: int, lowest: bool = False) -> Array:
    """Per row i: the largest (or `lowest`, the smallest) of the `window` values before it (NaN for
    row 0), in linear time (van Herk's blocks: a prefix and a suffix maximum per block of `window`)."""
    a = -values if lowest else values
    n = len(a)
    out = np.full(n, np.nan)
    if n < 2 or window < 1:
        return out
    padded = np.concatenate([a, np.full((-n) % window, -np.inf)]).reshape(-1, window)
    prefix = np.maximum.accumulate(padded, axis=1).ravel()
    suffix = np.maximum.accumulate(padded[:, ::-1], axis=1)[:, ::-1].ravel()
    end = np.arange(n - 1)  # the window of row end + 1 ends at row `end`
    start = end - window + 1
    ending = np.where(start >= 0, np.maximum(suffix[np.maximum(start, 0)], prefix[end]), prefix[end])
    out[1:] = -ending if lowest else ending
    return out



def _relative_steps(values: Array) -> Array:
    """Per row: log(x_i / x_{i-1}), the step as a share of the level it left (0 where either
    value is not positive): a multiplicative metric's steps are alike at any level."""
    out = np.zeros(len(values))
    if len(values) > 1:
        both = (values[1:] > 0) & (values[:-1] > 0)
        ratio = np.divide(values[1:], values[:-1], out=np.ones(len(values) - 1), where=both)
        out[1:] = np.log(ratio)
    return out



def _deviation_statistic(values: Array, window: int) -> Array:
    """Per row: its value minus the mean of the `window` values before it (signed; 0 for the
    first row): a point's event for the precedent, linear in the rows (a cumulative sum)."""
    sums = np.concatenate([[0.0], np.cumsum(values)])
    rows = np.arange(len(values))
    starts = np.maximum(rows - window, 0)
    counts = np.maximum(rows - starts, 1)
    result: Array = np.where(rows > 0, values - (sums[rows] - sums[starts]) / counts, 0.0)
    return result


def _level_statistic(values: Array, last: int, params: Parameters) -> Array:
    """Per row up to `last`: the median of its last m points minus the mean of the half day before
    them (signed; 0 before a half day exists). The level detectors' event for the precedent: a
    cumulative sum keeps it linear in the rows, so the scan computes it for its whole day."""
    m, window = params.shift_window, max(params.long_window // 2, 1)
    result = np.zeros(last)
    if last < m + window:
        return result
    medians = _rolling_medians(values[:last], m)  # row m-1..
    sums = np.concatenate([[0.0], np.cumsum(values[:last])])
    rows = np.arange(m + window - 1, last)
    before = (sums[rows - m + 1] - sums[rows - m + 1 - window]) / window
    result[rows] = medians[rows - m + 1] - before
    return result



def _value_statistics(values: Array, params: Parameters) -> dict[str, Array]:
    """The signed statistics of every row of finite `values` the precedent compares a point's
    deviation, a sustained level and a step by (the scorer and the detector state alike)."""
    return {"deviation": _deviation_statistic(values, params.long_window),
            "level": _level_statistic(values, len(values), params),
            "step": np.concatenate([[0.0], np.diff(values)]),
            "relative_step": _relative_steps(values)}



def _residual_statistics(residual: Array, params: Parameters) -> dict[str, Array]:
    """The same for the seasonal residuals (0 where no baseline exists)."""
    return {"residual_deviation": _deviation_statistic(residual, params.long_window),
            "residual_level": _level_statistic(residual, len(residual), params)}



def precedent_memory(times: Sequence[float] | Array, values: Sequence[float] | Array,
                     baseline: Array | None = None) -> PrecedentMemory | None:
    """The detector state's precedent memory of one series (its training window): each
    statistic's two largest separate rises and falls, and its floor. The last two hours are left to the scan's
    day (an event under way at training time is not its own precedent). None for a series too
    short to score."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(v)
    params = Parameters.from_times(t[valid])
    kept = (int(valid.sum()) // _block_rows(params) - 2) * _block_rows(params)
    if valid.sum() <= WARMUP or kept <= 0:
        return None
    stats = _value_statistics(v[valid], params)
    if baseline is not None:
        stats |= _residual_statistics(np.nan_to_num(v[valid] - np.asarray(baseline, dtype=np.float64)[valid]), params)
    block = _block_rows(params)
    first, last = t[valid][0:kept:block], t[valid][block - 1:kept:block]  # each block's first and last row
    recent = last >= t[valid][kept - 1] - CALENDAR_DAYS * DAY
    events, calendar = {}, {}
    for name, stat in stats.items():
        highs, lows, _ = _block_extremes(stat[:kept], params)
        events[name] = (*_two_largest_events(highs), *_two_largest_events(lows))
        rises, falls = np.where(highs > events[name][1], highs, 0.0), np.where(lows > events[name][3], lows, 0.0)
        keep = recent & ((rises > 0) | (falls > 0))
        calendar[name] = tuple(zip(first[keep].tolist(), last[keep].tolist(), rises[keep].tolist(), falls[keep].tolist(),
                                   strict=True))
    floor = float(_rolling_medians(v[valid][:kept], params.shift_window).min()) if kept >= params.shift_window else None
    moves = {name: _episode_onsets(t[valid][:kept], stats[name][:kept], params)
             for name in EPISODE_STATISTICS if name in stats}
    return PrecedentMemory(float(t[valid][kept - 1]), events, floor, calendar, moves)


def _episode_onsets(times: Array, level: Array, params: Parameters) -> tuple[Move, ...]:
    """The memory's `Move`s of a statistic: the rows of its last RECOVERY_DAYS (and the 2m rows a
    later level leaves out, and an hour's slack) whose value is at least every later one's in its
    direction, with the largest value the other way within RECOVERY_DAYS before each (read over the
    whole window, as the backtest reads it)."""
    reach = recovery_rows(params)
    since = times[-1] - (RECOVERY_DAYS * DAY + (2 * params.shift_window + _block_rows(params)) * params.interval)
    later_high = np.concatenate([np.maximum.accumulate(level[:0:-1])[::-1], [-np.inf]])
    later_low = np.concatenate([np.minimum.accumulate(level[:0:-1])[::-1], [np.inf]])
    kept = []
    for record in ((level > 0) & (level >= later_high), (level < 0) & (level <= later_low)):
        rows = np.where(record & (times >= since))[0]
        # Records fall in size with time: each hour block's first is its largest (a handful a day, not
        # every row of a level's slow decline; the look-back's edge is read to the block).
        blocks = rows // _block_rows(params)
        kept.append(rows[np.concatenate([[True], blocks[1:] != blocks[:-1]])] if len(rows) else rows)
    rows = np.sort(np.concatenate(kept))
    against = np.where(level[rows] > 0, -_past_extreme(level, reach, lowest=True)[rows], _past_extreme(level, reach)[rows])
    against = np.maximum(np.nan_to_num(against, nan=0.0), 0.0)
    return tuple(zip(times[rows].tolist(), level[rows].tolist(), against.tolist(), strict=True))

