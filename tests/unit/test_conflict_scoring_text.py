"""Batch scoring's output text: the probability column is written as f"{p:.6f}" writes it."""

import numpy as np

from shared.conflict.scoring import _probability_texts


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
