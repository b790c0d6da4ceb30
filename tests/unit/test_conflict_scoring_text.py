"""Batch scoring's output text: the probability column as f"{p:.6f}" writes it, and the features' as-of
times as isoformat writes them."""

from types import SimpleNamespace

import numpy as np

from shared.conflict.scoring import _features_as_of, _Input, _iso_utc, _probability_texts


def _formatted(p: np.ndarray) -> list[str]:
    return [f"{v:.6f}" for v in p.tolist()]


def test_probabilities_are_written_as_the_format_writes_them() -> None:
    rng = np.random.default_rng(8)
    halves = (np.arange(0, 1_000_000, 997) + 0.5) / 1e6  # at or a few bits off a half of a millionth
    exact_halves = np.array([2.0**-7, 2.0**-20, 0.5 + 2.0**-21, 2.0**-1 - 2.0**-21])
    edges = np.array([0.0, 1.0, 5e-324, 1e-300, 4.9999999e-7, 5e-7, 0.9999995, 0.99999949999, 1 - 2.0**-53])
    p = np.concatenate((rng.random(200_000), rng.random(1000) ** 30, halves, np.nextafter(halves, 0),
                        np.nextafter(halves, 1), exact_halves, edges))
    assert _probability_texts(p) == _formatted(p)


def test_values_outside_a_probability_are_formatted_one_by_one() -> None:
    for p in ([0.25, -0.0], [0.25, float("nan")], [0.25, 1.5], [0.25, -1e-9], [float("inf")], []):
        values = np.array(p, dtype=np.float64)
        assert _probability_texts(values) == _formatted(values)


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
