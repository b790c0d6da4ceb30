"""The detector state's training source: the hosts' vectors of a window (robust z of each reading
against its own past day), injected anomalies as the positives, and every series' seasonal
profile from its hourly medians. (Each series' precedent memory is no longer part of it:
refresh-precedents keeps it daily in `metric_precedents`, see shared/monitoring/precedents.py.)"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import numpy as np

from shared.monitoring.detectors import robust_standardise
from shared.monitoring.host import HOST_METRICS
from shared.monitoring.kind import AnomalyTrainingSet, Profile, profile_of
from shared.monitoring.series_repository import SeriesRepository, series_key
from shared.platform.transactions import Transactions

INJECTED_SHARE = 0.05
MINUTES_PER_DAY = 1440


def inject_anomalies(design: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Copies of some rows with one to three readings pushed 4-10 robust units away; the copy
    sits right after its original (rows stay in time order). Returns (order, labels): `order`
    indexes the originals, the copies are appended positives."""
    count = max(int(len(design) * INJECTED_SHARE), 1)
    chosen = np.sort(rng.choice(len(design), size=count, replace=False))
    copies = design[chosen].copy()
    for row in copies:
        columns = rng.choice(design.shape[1], size=int(rng.integers(1, 4)), replace=False)
        row[columns] += rng.choice([-1.0, 1.0], size=len(columns)) * rng.uniform(4.0, 10.0, size=len(columns))
    return chosen, copies


class SeriesTrainingSource:
    def __init__(self, transactions: Transactions, series: SeriesRepository, seed: int = 7) -> None:
        self._transactions = transactions
        self._series = series
        self._seed = seed

    def training_set(self, tenant_id: str | None, start: datetime, end: datetime) -> AnomalyTrainingSet:
        with self._transactions.transaction() as tx:
            vectors = self._series.source_vectors(tx, HOST_METRICS, start, end)
            hourly = self._series.hourly_medians(tx, start, end)
            keys = {row["series_id"]: series_key(row["source"], row["metric"]) for row in self._series.series_list(tx)}
        profiles = _profiles(hourly, keys)
        by_source: dict[str, list[tuple[datetime, dict[str, float]]]] = defaultdict(list)
        for row in vectors:
            by_source[row["source"]].append((row["minute"], row["vector"]))
        rows: list[tuple[datetime, np.ndarray]] = []
        for minutes in by_source.values():
            minutes.sort(key=lambda item: item[0])
            matrix = np.array([[v.get(m, np.nan) for m in HOST_METRICS] for _, v in minutes], dtype=np.float64)
            if len(matrix) < 64:
                continue
            scored = np.arange(32, len(matrix))
            z = np.column_stack([robust_standardise(_filled(matrix[:, c]), scored, MINUTES_PER_DAY)
                                 for c in range(matrix.shape[1])])
            rows.extend(zip([minutes[i][0] for i in scored], z, strict=True))
        rows.sort(key=lambda item: item[0])
        design = np.array([r[1] for r in rows], dtype=np.float64).reshape(-1, len(HOST_METRICS))
        times = [r[0] for r in rows]
        labels = np.zeros(len(design), dtype=bool)
        if len(design):
            chosen, copies = inject_anomalies(design, np.random.default_rng(self._seed))
            order = np.argsort(np.concatenate([np.arange(len(design)), chosen]), kind="stable")
            design = np.vstack([design, copies])[order]
            labels = np.concatenate([labels, np.ones(len(copies), dtype=bool)])[order]
            times = [(times + [times[i] for i in chosen])[k] for k in order]
        return AnomalyTrainingSet(design, labels, times, start, end, profiles)


def _profiles(hourly: list[dict[str, Any]], keys: dict[int, str]) -> dict[str, Profile]:
    """Each series' seasonal profile from its hourly medians (at least three days of them)."""
    per_series: dict[str, tuple[list[datetime], list[float]]] = defaultdict(lambda: ([], []))
    for row in hourly:
        key = keys.get(row["series_id"])
        if key is not None:
            per_series[key][0].append(row["hour"])
            per_series[key][1].append(float(row["median"]))
    return {key: profile_of(hours, values) for key, (hours, values) in per_series.items() if len(hours) >= 72}


def _filled(column: np.ndarray) -> np.ndarray:
    """A reading missing in a minute takes the previous minute's value (the vector needs all)."""
    out = column.copy()
    for i in range(1, len(out)):
        if np.isnan(out[i]):
            out[i] = out[i - 1]
    return np.nan_to_num(out)
