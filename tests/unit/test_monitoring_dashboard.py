"""The monitoring dashboard's downsampled series: each bucket's mean is drawn inside its own band."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from shared.monitoring import dashboard


def test_a_bucket_mean_never_leaves_its_min_max_band(monkeypatch: pytest.MonkeyPatch) -> None:
    # One-point buckets whose value has more than 6 decimals: rounding the mean alone would put it
    # above (first) or below (second) the bucket's own max and min.
    rows = [{"t": 0, "low": 40.1234567, "high": 40.1234567, "mean": 40.1234567, "points": 1},
            {"t": 60, "low": 7.0000004, "high": 7.0000004, "mean": 7.0000004, "points": 1},
            {"t": 120, "low": 1.0, "high": 3.0, "mean": 2.25, "points": 4}]
    monkeypatch.setattr(dashboard.repo, "downsampled", lambda *args: rows)
    services: Any = SimpleNamespace(transactions=SimpleNamespace(transaction=lambda: nullcontext()))
    query = dashboard.SeriesQuery(source="host-a", metric="cpu_percent", days=1, points=100)

    series = dashboard.series_window(services, query, now=datetime(2026, 11, 30, tzinfo=UTC))

    assert series["mean"] == [40.1234567, 7.0000004, 2.25]
    assert series["raw_points"] == 6
    assert all(lo <= mean <= hi for lo, mean, hi in zip(series["min"], series["mean"], series["max"], strict=True))
