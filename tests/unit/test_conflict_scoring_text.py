"""Batch scoring's text: the features' as-of times as isoformat writes them, and the lines the
request model refuses."""

from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pytest

from shared.conflict.scoring import _features_as_of, _Input, _iso_utc, _Part, _read
from shared.errors import InvalidInput


def _as_of_input(asked: np.ndarray) -> _Input:
    table = SimpleNamespace(as_of=asked)  # _features_as_of reads the table's as_of only
    return _Input(table, _iso_utc(asked), [], None, as_of_is_iso_utc=True)  # type: ignore[arg-type]


def test_features_as_of_texts_are_the_times_written() -> None:
    """Rows moved to a batch's start take the text of that time, whether it is another row's time
    asked (found in the input's texts), a time no row asked, or a whole second."""
    rng = np.random.default_rng(8)
    asked = np.sort(rng.integers(1_700_000_000_000_000, 1_700_100_000_000_000, 5000))
    asked[::7] -= asked[::7] % 1_000_000  # whole seconds, written without a fraction
    asked = np.sort(asked)
    as_of = asked.copy()
    moved = rng.choice(len(asked), 2000, replace=False)
    as_of[moved[:1000]] = asked[np.maximum(moved[:1000] - rng.integers(1, 20, 1000), 0)]  # another row's time
    as_of[moved[1000:]] = asked[moved[1000:]] - rng.integers(1, 10**9, 1000)  # a time no row asked
    as_of[moved[1500:]] -= as_of[moved[1500:]] % 1_000_000
    for order in (np.arange(len(asked)), rng.permutation(len(asked))):  # rows in time order or not
        data = _as_of_input(asked[order])
        assert _features_as_of(data, as_of[order].astype(np.float64)) == _iso_utc(as_of[order])


def test_a_row_naming_a_field_twice_is_refused_by_line_as_the_api_refuses_it() -> None:
    header = "user_id,domain,entity_type,entity_id,fields,as_of\n"
    text = header + "u1,voice,recording,r1,notes;title,2026-10-01T09:00:00+00:00\n" \
                  + "u2,voice,recording,r2,notes;notes,2026-10-01T09:00:00+00:00\n"
    with pytest.raises(InvalidInput) as refused:
        _read(_Part(file=text, header_end=len(header), start=len(header), end=len(text)), "t",
              datetime(2026, 11, 1, tzinfo=UTC))
    assert refused.value.fields[0].field == "line 3" and "fields" in refused.value.fields[0].reason
