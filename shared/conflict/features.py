"""The conflict features: their one definition, as of the moment a prediction is asked.

A client asks for a prediction when it starts a sync, before it uploads the edits it made offline
since its last sync (`client_last_sync_at`). So every feature is computed *as of* a time `A`, from
stored events received strictly before `A`:

- `A` is the time asked (`as_of`; now for a live prediction), moved back to the **start of the
  device's sync batch** when the request names its `device_id` and `client_last_sync_at` and the
  store already holds events of that batch (same user, device and `client_last_sync_at`)
  received in the hour before: the earliest of them. A training row (a stored event) is thus as of
  its batch's start, and the batch's earlier events never leak into its later rows.
- `since` is the device's last sync (`client_last_sync_at`), else the user's latest stored sync
  before `A`, and never more than 30 days before `A`.

| feature | definition |
| --- | --- |
| concurrent_editors | distinct other users with a sync of the entity in [A - 24 h, A) |
| hours_since_last_sync | hours from `client_last_sync_at` (else the user's latest sync in the 30 days before) to A, in [0, 720]; 720 when there is none |
| user_conflict_rate | (the user's conflicts + 1) / (the user's syncs + 10) in [A - 90 d, A) |
| entity_edit_frequency | syncs of the entity (any user) in [A - 7 d, A), per day |
| field_overlap_score | share of "my fields" that other users' syncs of the entity in [since, A) changed; my fields are the request's, else every field the user changed in [A - 30 d, A) |
| other_edits_since_sync | other users' syncs of the entity in [since, A) |

This module computes them for many requests at once from columns of stored events (numpy: one
sort per grouping and binary searches, so a row costs the same against 100k or 1M events);
`features_repository.py` computes the same numbers for one live request in one SQL statement, and
a test holds the two equal. The final arithmetic (`features_from_counts`) is shared by both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from operator import methodcaller
from typing import Any

import numpy as np
from numpy.typing import NDArray

Int = NDArray[np.int64]
Float = NDArray[np.float64]

FEATURE_NAMES: tuple[str, ...] = (
    "concurrent_editors",
    "hours_since_last_sync",
    "user_conflict_rate",
    "entity_edit_frequency",
    "field_overlap_score",
    "other_edits_since_sync",
)
# What the counts rest on (the answer's `confidence`), beside the features in every row.
SUPPORT_NAMES: tuple[str, ...] = ("support_user_syncs", "support_entity_edits")

US = 1_000_000
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US
CONCURRENT_WINDOW_US = DAY_US
CONFLICT_RATE_WINDOW_US = 90 * DAY_US
EDIT_FREQUENCY_DAYS = 7
FIELDS_WINDOW_US = 30 * DAY_US  # usual fields; the longest look back for "since"
SYNC_BATCH_SPAN_US = HOUR_US  # a batch is uploaded within minutes; a retry next day is a new moment
HOURS_CAP = 720.0
PRIOR_CONFLICTS = 1.0
PRIOR_SYNCS = 10.0
# How far before the earliest as-of time the stored history must reach for every window.
LOOKBACK = timedelta(microseconds=CONFLICT_RATE_WINDOW_US + SYNC_BATCH_SPAN_US)
# ... and for every feature but the user's conflict rate (training reads older events only as
# RateOnlyEvents; batch scoring narrows it further, see whole_events_for).
RECENT_LOOKBACK = timedelta(microseconds=FIELDS_WINDOW_US + SYNC_BATCH_SPAN_US)

NO_TIME = np.iinfo(np.int64).min  # a missing time (no last sync, no earlier event)
NO_KEY = np.int64(0)  # a missing device; hashed keys are never 0 in practice (see features_repository)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(at: datetime) -> int:
    """Exact epoch microseconds (a float timestamp would round)."""
    return (at - _EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


def datetimes_from_us(us: NDArray[np.int64]) -> list[datetime]:
    """from_us of each element, converted by numpy (a Python call per element cost more than the
    features of a training row)."""
    naive = np.asarray(us, dtype=np.int64).astype("datetime64[us]").tolist()
    return list(map(methodcaller("replace", tzinfo=UTC), naive))


@dataclass(frozen=True)
class RateOnlyEvents:
    """Stored events that no window but the conflict rate's needs (see WholeEvents): all that counts
    of them is who synced when, and whether it conflicted. In time order; they count for the users'
    rates together with the EventColumns they go with, never twice."""

    t: Int
    user: Int
    conflicted: NDArray[np.bool_]


@dataclass(frozen=True)
class EventColumns:
    """Stored sync events as integer columns. Keys are 64-bit hashes of the tenant-qualified ids
    (user: tenant|user; entity: tenant|domain|type|id; device: tenant|user|device), so a global
    model never mixes tenants; fields are hashes of their names, one row per (event, field)."""

    t: Int  # received_at, epoch microseconds
    user: Int
    entity: Int
    device: Int
    last_sync: Int  # client_last_sync_at, epoch microseconds, NO_TIME when absent
    conflicted: NDArray[np.bool_]
    field_row: Int  # index of the event of each field row
    field: Int
    rate_only: RateOnlyEvents | None = None  # earlier events, for the users' conflict rates only

    def __len__(self) -> int:
        return len(self.t)


@dataclass(frozen=True)
class RequestColumns:
    """What to compute features for: the asked time, the keys (device NO_KEY and last_sync NO_TIME
    when not given) and the request's fields (none: the user's usual fields)."""

    as_of: Int
    user: Int
    entity: Int
    device: Int
    last_sync: Int
    field_row: Int
    field: Int

    def __len__(self) -> int:
        return len(self.as_of)


def requests_from_events(events: EventColumns) -> RequestColumns:
    """Training rows: each stored event asks as of its own receipt (moved to its batch's start)."""
    return RequestColumns(events.t, events.user, events.entity, events.device, events.last_sync,
                          events.field_row, events.field)


@dataclass(frozen=True)
class WholeEvents:
    """Which stored events a bulk read brings whole; the others only as RateOnlyEvents: every event
    received from `since` (epoch µs), and from `earlier_since` those of `earlier_entities` and
    `earlier_users` (what a few rows reach back for)."""

    since: int
    earlier_since: int
    earlier_entities: Int
    earlier_users: Int

    @classmethod
    def all_from(cls, since: int) -> WholeEvents:
        none = np.zeros(0, dtype=np.int64)
        return cls(since, since, none, none)


def whole_events_for(requests: RequestColumns) -> WholeEvents:
    """What the requests need whole. A request is as of A >= as_of - 1 h (its batch's start). Every
    request looks back 7 days for its entity's edits (24 h for editors, whose earlier edits matter
    only within a day): everything from the earliest of those comes whole. Further back only for
    its own entity: others' edits and fields since `since` (the device's last sync when it names
    its fields, else up to 30 days), and its user's usual fields over 30 days when it names none."""
    if not len(requests):
        return WholeEvents.all_from(0)
    named = np.zeros(len(requests), dtype=bool)
    named[requests.field_row] = True
    recent, since = _whole_reach(requests.as_of, requests.last_sync, named)
    further = since < recent
    return WholeEvents(recent, min(recent, int(since.min())), np.unique(requests.entity[further]),
                       np.unique(requests.user[further & ~named]))


def whole_events_since(as_of: Int, last_sync: Int, named: NDArray[np.bool_]) -> int:
    """whole_events_for(...).earlier_since, from the times alone (no keys): how far back a read
    for these requests brings events whole."""
    if not len(as_of):
        return 0
    recent, since = _whole_reach(as_of, last_sync, named)
    return min(recent, int(since.min()))


def _whole_reach(as_of: Int, last_sync: Int, named: NDArray[np.bool_]) -> tuple[int, Int]:
    """The earliest start of the requests' week windows, and each request's `since` reach."""
    earliest = as_of - SYNC_BATCH_SPAN_US
    month = earliest - FIELDS_WINDOW_US
    since = np.where(named & (last_sync != NO_TIME), np.minimum(np.maximum(last_sync, month), earliest), month)
    return int((earliest - EDIT_FREQUENCY_DAYS * DAY_US).min()), since


# -- grouped timelines ----------------------------------------------------------------------------


def _codes(*arrays: Int) -> list[Int]:
    """Dense codes 0..k-1 for the values of several arrays, consistent across them (in no
    particular order). An array passed twice (training rows ask about the events themselves) is
    coded once, and its codes are one array again, so that pairs of them are coded once too.

    The values of the shortest array (the requests, in batch scoring) are sorted, and the others
    found among them by binary search; only the values not found there are sorted in turn (most
    stored events are of the requests' users and entities): far fewer elements sorted than all.
    One array alone is searched among the values of a sample of it (see _values_of_sample)."""
    distinct = list({id(array): array for array in arrays}.values())
    if len(distinct) == 1:  # training: the events ask about themselves
        known = _values_of_sample(distinct[0])
        if known is None:  # mostly distinct values: one sort is all it takes
            inverse = np.unique(distinct[0], return_inverse=True)[1].astype(np.int64)
            return [inverse for _ in arrays]
    else:
        known = np.unique(min(distinct, key=len))
    coded, missing = {}, []
    for array in distinct:
        at = np.minimum(np.searchsorted(known, array), max(len(known) - 1, 0))
        found = known[at] == array if len(known) else np.zeros(len(array), dtype=bool)
        coded[id(array)] = at.astype(np.int64)
        missing.append(np.flatnonzero(~found))
    others, inverse = np.unique(np.concatenate([array[miss] for array, miss in zip(distinct, missing, strict=True)]),
                                return_inverse=True)
    start = 0
    for array, miss in zip(distinct, missing, strict=True):
        coded[id(array)][miss] = len(known) + inverse[start:start + len(miss)]
        start += len(miss)
    return [coded[id(array)] for array in arrays]


_SAMPLE_STRIDE = 64


def _values_of_sample(array: Int) -> Int | None:
    """The distinct values of every _SAMPLE_STRIDE-th element, when they repeat (users, entities,
    fields): the array is then coded by binary search among them, and only the values the sample
    missed are sorted. A sort of all of a million events' 2M field rows took more per row than of
    100k (n log n, out of cache); None when the sample's values are mostly distinct (a sort wins)."""
    sample = np.unique(array[::_SAMPLE_STRIDE])
    return sample if 2 * len(sample) <= len(array) // _SAMPLE_STRIDE else None


# Codes are kept below this: a timeline searches key * (its length + 1) + rank as one int64.
_CODE_BOUND = 2**31


def _pair_codes(a: list[Int], b: list[Int]) -> list[Int]:
    """Codes of (a, b) pairs, where a and b are codes already (each below _CODE_BOUND): a * width
    + b, made dense (np.unique, a sort of every element) only when that could reach the bound."""
    width = int(max((int(x.max()) for x in b if len(x)), default=0)) + 1
    height = int(max((int(x.max()) for x in a if len(x)), default=0)) + 1
    combined: dict[tuple[int, int], Int] = {}
    for x, y in zip(a, b, strict=True):
        combined.setdefault((id(x), id(y)), x * width + y)
    pairs = [combined[(id(x), id(y))] for x, y in zip(a, b, strict=True)]
    return pairs if height * width < _CODE_BOUND else _codes(*pairs)


class _Grid:
    """Sorted times, shared by the timelines over the same times, with the rank of each query
    array remembered (the as-of times are looked up by nearly every feature)."""

    def __init__(self, sorted_times: Int) -> None:
        self.times = sorted_times
        self._ranks: dict[int, tuple[Int, Int]] = {}

    def rank(self, times: Int) -> Int:
        """How many grid times lie below each time."""
        known = self._ranks.get(id(times))
        if known is not None and known[0] is times:
            return known[1]
        ranks: Int = np.searchsorted(self.times, times)
        self._ranks[id(times)] = (times, ranks)  # holding the array keeps its id unique
        return ranks

    def gathered(self, times: Int, rows: Int) -> Int:
        """times[rows], its ranks remembered as the ranks of `times` gathered: the fields' bounds
        repeat each request's time per field row (issue 8's case: 41k times searched, not 85k)."""
        picked: Int = times[rows]
        self._ranks[id(picked)] = (picked, self.rank(times)[rows])
        return picked


def _own_ranks(sorted_times: Int) -> Int:
    """Each element's rank among sorted times (the index of the first equal one), no search."""
    index = np.arange(len(sorted_times))
    new = np.ones(len(sorted_times), dtype=bool)
    new[1:] = sorted_times[1:] != sorted_times[:-1]
    ranks: Int = np.maximum.accumulate(np.where(new, index, 0))
    return ranks


def _stable_key_order(keys: Int) -> Int:
    """The order of the keys, ties in the order given. Keys are dense codes (below _CODE_BOUND):
    numpy's stable sort of 16-bit integers is a radix sort, linear, so the keys go by their low and
    then their high 16 bits, two linear passes (an int64 sort of key * n + position took 3.6 to 8.5
    ms per timeline of issue 8's case, the two passes 0.9 to 1.7; the same order)."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    if int(keys.max()) < 2**16 and int(keys.min()) >= 0:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    if int(keys.max()) < 2**32 and int(keys.min()) >= 0:
        by_low = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
        return by_low[np.argsort((keys[by_low] >> 16).astype(np.uint16), kind="stable")]
    return np.argsort(keys, kind="stable")


class _Timeline:
    """Times grouped by a dense key, sorted, for counting and finding times before a bound. Each
    query is a binary search over one sorted array: its cost grows with log(history), not with
    the number of events in its window.

    Keys and times are searched as one int64, key * width + rank(time), where rank is how many
    stored times lie below: `stored < bound` exactly when `rank(stored) < rank(bound)`, duplicates
    or not, so nothing overflows however long the history."""

    def __init__(self, keys: Int, times: Int, weights: Int | None = None, grid: _Grid | None = None) -> None:
        by_time = None
        if not bool(np.all(times[1:] >= times[:-1])):
            # Put in time order first: a stable sort, which merges sorted runs in linear time
            # (older events read as counts only, then the whole ones), and then as below.
            by_time = np.argsort(times, kind="stable")
            keys, times, grid = keys[by_time], times[by_time], None
            weights = None if weights is None else weights[by_time]
        # In time order, a stable sort by key orders (key, time).
        self._grid = grid if grid is not None and grid.times is times else _Grid(times)
        ranks = _own_ranks(times)
        order = _stable_key_order(keys)
        self._order = order if by_time is None else by_time[order]  # (key, time) order of the elements given
        self._width = len(self._grid.times) + 1
        # The only gathers in (key, time) order: at 1M events these arrays leave the CPU cache and
        # each gather costs a miss per element; keys and times follow from them when asked for.
        self._sorted = keys[order] * self._width + ranks[order]
        self._cumulative = None if weights is None else np.concatenate(([0], np.cumsum(weights[order])))
        self._positions: dict[tuple[int, int], tuple[Int, Int, Int]] = {}

    @cached_property
    def _keys(self) -> Int:
        """The keys in (key, time) order (only the searches for times by key need them)."""
        keys: Int = self._sorted // self._width
        return keys

    @cached_property
    def _times(self) -> Int:
        """The times in (key, time) order: the grid's time at each element's rank."""
        times: Int = self._grid.times[self._sorted % self._width]
        return times

    def _position(self, keys: Int, times: Int) -> Int:
        """Where each (key, bound) falls in the sorted elements. Remembered per pair of arrays:
        several counts share a bound (the as-of times, above all)."""
        known = self._positions.get((id(keys), id(times)))
        if known is not None and known[0] is keys and known[1] is times:
            return known[2]
        position: Int = np.searchsorted(self._sorted, keys * self._width + self._grid.rank(times))
        self._positions[(id(keys), id(times))] = (keys, times, position)  # holding them keeps the ids unique
        return position

    def count_before(self, keys: Int, times: Int) -> Int:
        """Elements of each key with time < the bound."""
        start: Int = np.searchsorted(self._sorted, keys * self._width)
        return self._position(keys, times) - start

    def count_in(self, keys: Int, lo: Int, hi: Int) -> Int:
        """Elements of each key with lo <= time < hi (0 when hi <= lo)."""
        return np.maximum(self._position(keys, hi) - self._position(keys, lo), 0)

    def sum_in(self, keys: Int, lo: Int, hi: Int) -> Int:
        """The weights of the elements count_in counts."""
        assert self._cumulative is not None, "a timeline without weights"
        return np.maximum(self._cumulative[self._position(keys, hi)] - self._cumulative[self._position(keys, lo)], 0)

    def previous_of_same_key(self) -> Int:
        """For each element (in the order given), the time of the element before it in (key, time)
        order with the same key, or NO_TIME. Equal times count as earlier (a batch stamped with one
        intake time)."""
        previous = np.full(len(self._times), NO_TIME, dtype=np.int64)
        same = self._keys[1:] == self._keys[:-1]
        previous[self._order[1:][same]] = self._times[:-1][same]
        return previous

    def last_before(self, keys: Int, times: Int) -> Int:
        """The latest time of each key below the bound, or NO_TIME."""
        if not len(self._sorted):  # no history at all
            return np.full(len(keys), NO_TIME, dtype=np.int64)
        position = self._position(keys, times) - 1
        found = position >= 0
        found[found] = self._keys[position[found]] == keys[found]
        return np.where(found, self._times[np.maximum(position, 0)], NO_TIME)

    def first_at_or_after(self, keys: Int, times: Int) -> Int:
        """The earliest time of each key at or above the bound, or NO_TIME."""
        if not len(self._sorted):
            return np.full(len(keys), NO_TIME, dtype=np.int64)
        position = self._position(keys, times)
        found = position < len(self._sorted)
        found[found] = self._keys[position[found]] == keys[found]
        return np.where(found, self._times[np.minimum(position, len(self._sorted) - 1)], NO_TIME)


# -- the features ---------------------------------------------------------------------------------


def features_from_counts(counts: Mapping[str, Any]) -> dict[str, Any]:
    """The one arithmetic from counts to features, for arrays (bulk) and scalars (live) alike.

    counts: as_of, last_sync, last_user_sync (NO_TIME when absent), user_syncs, user_conflicts,
    entity_edits, editors, others_since, my_fields, overlapping_fields."""
    as_of = np.asarray(counts["as_of"], dtype=np.int64)
    last_sync = np.asarray(counts["last_sync"], dtype=np.int64)
    last_user = np.asarray(counts["last_user_sync"], dtype=np.int64)
    reference = np.where(last_sync != NO_TIME, last_sync, last_user)
    hours = np.where(reference != NO_TIME,
                     np.clip((as_of - np.where(reference != NO_TIME, reference, as_of)) / HOUR_US, 0.0, HOURS_CAP),
                     HOURS_CAP)
    syncs = np.asarray(counts["user_syncs"], dtype=np.float64)
    my_fields = np.asarray(counts["my_fields"], dtype=np.float64)
    return {
        "concurrent_editors": np.asarray(counts["editors"], dtype=np.float64),
        "hours_since_last_sync": hours.astype(np.float64),
        "user_conflict_rate": (np.asarray(counts["user_conflicts"], dtype=np.float64) + PRIOR_CONFLICTS)
        / (syncs + PRIOR_SYNCS),
        "entity_edit_frequency": np.asarray(counts["entity_edits"], dtype=np.float64) / EDIT_FREQUENCY_DAYS,
        "field_overlap_score": np.where(
            my_fields > 0, np.asarray(counts["overlapping_fields"], dtype=np.float64) / np.maximum(my_fields, 1), 0.0),
        "other_edits_since_sync": np.asarray(counts["others_since"], dtype=np.float64),
        "support_user_syncs": syncs,
        "support_entity_edits": np.asarray(counts["entity_edits"], dtype=np.float64),
    }


def since_time(as_of: Int, last_sync: Int, last_user_sync: Int) -> Int:
    """The device's last sync, else the user's latest, never more than 30 days back nor after as_of."""
    reference = np.where(last_sync != NO_TIME, last_sync, last_user_sync)
    floor = as_of - FIELDS_WINDOW_US
    return np.minimum(np.where(reference != NO_TIME, np.maximum(reference, floor), floor), as_of)


def compute_features(events: EventColumns, requests: RequestColumns) -> dict[str, Float]:
    """Feature columns (FEATURE_NAMES, SUPPORT_NAMES, and `as_of`: the moment each row is as of)
    for every request, from the stored events strictly before it. Events outside the requests'
    windows may be present; they change nothing."""
    n = len(requests)
    if n == 0:
        return {name: np.zeros(0) for name in (*FEATURE_NAMES, *SUPPORT_NAMES, "as_of")}
    earlier = events.rate_only if events.rate_only is not None and len(events.rate_only.t) else None
    if earlier is None:
        user_e, user_r = _codes(events.user, requests.user)
    else:
        user_e, user_r, user_earlier = _codes(events.user, requests.user, earlier.user)
    entity_e, entity_r = _codes(events.entity, requests.entity)
    pair_e, pair_r = _pair_codes([entity_e, entity_r], [user_e, user_r])
    device_e, device_r = _codes(events.device, requests.device)
    sync_e, sync_r = _codes(events.last_sync, requests.last_sync)
    batch_e, batch_r = _pair_codes([device_e, device_r], [sync_e, sync_r])

    # The moment asked, moved back to the start of the device's sync batch.
    asked = requests.as_of
    received = _Grid(events.t)
    batches = _Timeline(batch_e, events.t, grid=received)
    first = batches.first_at_or_after(batch_r, asked - SYNC_BATCH_SPAN_US)
    names_batch = (requests.device != NO_KEY) & (requests.last_sync != NO_TIME)
    as_of = np.where(names_batch & (first != NO_TIME) & (first < asked), first, asked)

    if earlier is None:
        users = _Timeline(user_e, events.t, events.conflicted.astype(np.int64), grid=received)
    else:  # every event once, whole or not
        users = _Timeline(np.concatenate((user_earlier, user_e)), np.concatenate((earlier.t, events.t)),
                          np.concatenate((earlier.conflicted, events.conflicted)).astype(np.int64))
    rate_from = as_of - CONFLICT_RATE_WINDOW_US
    user_syncs = users.count_in(user_r, rate_from, as_of)
    user_conflicts = users.sum_in(user_r, rate_from, as_of)
    last_user = users.last_before(user_r, as_of)
    last_user = np.where(last_user >= as_of - FIELDS_WINDOW_US, last_user, NO_TIME)
    since = since_time(as_of, requests.last_sync, last_user)

    entities = _Timeline(entity_e, events.t, grid=received)
    pairs = _Timeline(pair_e, events.t, grid=received)
    entity_edits = entities.count_in(entity_r, as_of - EDIT_FREQUENCY_DAYS * DAY_US, as_of)
    others_since = entities.count_in(entity_r, since, as_of) - pairs.count_in(pair_r, since, as_of)

    # Distinct other editors in [A - W, A): an event counts for A exactly when it is its user's first
    # on the entity within the window, i.e. for A in (max(t, previous + W), t + W], where previous is
    # the same user's previous sync of the entity. So the count at A is (#starts < A) - (#ends < A).
    previous = pairs.previous_of_same_key()
    window = CONCURRENT_WINDOW_US
    starts = np.where(previous != NO_TIME, np.maximum(events.t, previous + window), events.t)
    editors_all = (_Timeline(entity_e, starts).count_before(entity_r, as_of)
                   - _Timeline(entity_e, events.t + window).count_before(entity_r, as_of))
    mine_recent = pairs.last_before(pair_r, as_of) >= as_of - window
    editors = editors_all - mine_recent.astype(np.int64)

    my_fields, overlapping = _field_overlap(events, requests, user_e, user_r, entity_e, entity_r, pair_e, pair_r,
                                            as_of, since)
    counts = {
        "as_of": as_of, "last_sync": requests.last_sync, "last_user_sync": last_user, "user_syncs": user_syncs,
        "user_conflicts": user_conflicts, "entity_edits": entity_edits, "editors": editors,
        "others_since": others_since, "my_fields": my_fields, "overlapping_fields": overlapping,
    }
    features = features_from_counts(counts)
    features["as_of"] = as_of.astype(np.float64)  # exact below 2**53 µs (year 2255)
    return features


def _field_overlap(
    events: EventColumns, requests: RequestColumns, user_e: Int, user_r: Int, entity_e: Int, entity_r: Int,
    pair_e: Int, pair_r: Int, as_of: Int, since: Int,
) -> tuple[Int, Int]:
    """Per request: how many of its fields there are, and how many of them other users changed on
    the entity in [since, as_of)."""
    n = len(requests)
    event_field_user = user_e[events.field_row]
    field_times = events.t[events.field_row]
    field_grid = _Grid(field_times)  # shared by the timelines over the fields (when in time order)
    # Requests without fields take the user's usual ones: each field the user has ever changed in
    # the loaded history, kept when the user changed it in [A - 30 d, A).
    given = np.zeros(n, dtype=bool)
    given[requests.field_row] = True
    missing = np.flatnonzero(~given)
    field_e, field_q = _codes(events.field, requests.field)
    row, field = requests.field_row, field_q
    if len(missing):
        user_fields = np.unique(event_field_user * (int(field_e.max(initial=0)) + 1) + field_e)
        width = int(field_e.max(initial=0)) + 1
        owner, which = user_fields // width, user_fields % width
        first = np.searchsorted(owner, user_r[missing], side="left")
        last = np.searchsorted(owner, user_r[missing], side="right")
        repeat = last - first
        candidate_row = np.repeat(missing, repeat)
        offsets = np.arange(repeat.sum()) - np.repeat(np.cumsum(repeat) - repeat, repeat)
        candidate_field = which[np.repeat(first, repeat) + offsets]
        user_field_e, user_field_c = _pair_codes([event_field_user, user_r[candidate_row]], [field_e, candidate_field])
        recent = _Timeline(user_field_e, field_times, grid=field_grid).count_in(
            user_field_c, as_of[candidate_row] - FIELDS_WINDOW_US, as_of[candidate_row]) > 0
        row = np.concatenate((row, candidate_row[recent]))
        field = np.concatenate((field, candidate_field[recent]))
    my_fields = np.bincount(row, minlength=n).astype(np.int64)
    entity_field_e, entity_field_q = _pair_codes([entity_e[events.field_row], entity_r[row]], [field_e, field])
    pair_field_e, pair_field_q = _pair_codes([pair_e[events.field_row], pair_r[row]], [field_e, field])
    lo, hi = field_grid.gathered(since, row), field_grid.gathered(as_of, row)
    changed_by_others = (_Timeline(entity_field_e, field_times, grid=field_grid).count_in(entity_field_q, lo, hi)
                         - _Timeline(pair_field_e, field_times, grid=field_grid).count_in(pair_field_q, lo, hi)) > 0
    overlapping = np.bincount(row, weights=changed_by_others, minlength=n).astype(np.int64)
    return my_fields, overlapping
