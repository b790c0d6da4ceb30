import numpy as np
import pytest

from shared.platform.arrays import sorted_distinct


@pytest.mark.parametrize("values", [
    np.zeros(0, dtype=np.int64),
    np.array([5, 3, 5, 5, -2, 3], dtype=np.int64),
    np.random.default_rng(7).integers(-2**62, 2**62, 5000),
    np.array([np.nan, 1.0, np.nan, 0.5, 1.0, -0.0, 0.0]),
    np.random.default_rng(8).integers(0, 40, 3000).astype(np.float64) / 8,
])
def test_the_distinct_values_are_numpys_unique_ones(values: np.ndarray) -> None:
    expected = np.unique(values)
    got = sorted_distinct(values)
    assert got.dtype == expected.dtype
    assert np.array_equal(got, expected, equal_nan=True)
