"""The features' grouped timelines against a count by hand, for keys of every width the sort by
key handles its own way (below 2**16, below 2**32, and beyond)."""

from __future__ import annotations

import numpy as np
import pytest

from shared.conflict.features import NO_TIME, _codes, _Timeline


@pytest.mark.parametrize("largest_key", [40, 2**16 + 7, 2**31 - 1, 2**40])
@pytest.mark.parametrize("in_time_order", [True, False])
def test_timeline_counts_and_neighbours_are_those_counted_by_hand(largest_key: int, in_time_order: bool) -> None:
    rng = np.random.default_rng(largest_key % 1000 + in_time_order)
    # Few distinct keys spread up to the largest (ties of keys and of times, as in a history).
    distinct_keys = np.unique(np.concatenate(([0, largest_key], rng.integers(0, largest_key, 30))))
    keys = rng.choice(distinct_keys, 2_000)
    times = rng.integers(0, 500, 2_000)
    if in_time_order:
        times = np.sort(times)
    timeline = _Timeline(keys, times)
    ask_keys = rng.choice(distinct_keys, 300)
    lo, hi = rng.integers(0, 520, 300), rng.integers(0, 520, 300)

    counted = [int(np.sum((keys == k) & (times >= a) & (times < b))) for k, a, b in zip(ask_keys, lo, hi, strict=True)]
    before = [int(np.sum((keys == k) & (times < b))) for k, b in zip(ask_keys, hi, strict=True)]
    last = [int(times[(keys == k) & (times < b)].max(initial=NO_TIME)) for k, b in zip(ask_keys, hi, strict=True)]
    assert timeline.count_in(ask_keys, lo, hi).tolist() == counted
    assert timeline.count_before(ask_keys, hi).tolist() == before
    assert timeline.last_before(ask_keys, hi).tolist() == last

    # Each element's previous of the same key: the latest earlier time (an equal time counts as
    # earlier when it comes first in the order given).
    previous = timeline.previous_of_same_key().tolist()
    for n in rng.integers(0, 2_000, 200).tolist():
        same = np.flatnonzero(keys == keys[n])
        ordered = sorted(same.tolist(), key=lambda m: (times[m], m))
        at = ordered.index(n)
        assert previous[n] == (int(times[ordered[at - 1]]) if at else NO_TIME)


@pytest.mark.parametrize("distinct", [3, 500, 20_000])
def test_one_key_array_is_coded_densely_and_equal_values_alike(distinct: int) -> None:
    """Repeating keys are coded by search among a sample's values, mostly distinct ones by a sort;
    either way codes are 0..k-1, one per value, also for values the sample missed."""
    rng = np.random.default_rng(distinct)
    values = rng.integers(1, 2**62, distinct)
    keys = values[rng.integers(0, distinct, 20_000)]
    keys[rng.integers(0, len(keys), 5)] = rng.integers(1, 2**62, 5)  # rare values a sample likely misses
    first, second = _codes(keys, keys)
    assert first is second
    assert sorted(set(first.tolist())) == list(range(len(np.unique(keys))))
    _, by_value = np.unique(keys, return_inverse=True)
    pairs = set(zip(first.tolist(), by_value.tolist(), strict=True))
    assert len(pairs) == len(np.unique(keys))  # one code per value and one value per code
