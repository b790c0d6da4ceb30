"""Metric series and their points: PostgreSQL (one-minute points for N days, hourly rollups
beyond) and the in-memory fake.

The scan's read is one statement: every series with its points of the window, aggregated into two
arrays per series where the rows are (1,000 series x 1,440 points come back as 1,000 rows)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Point:
    source: str
    metric: str
    ts: datetime
    value: float
    tenant_id: str | None = None


@dataclass
class SeriesWindow:
    """One series as the scan sees it: its state and its points of the window (epoch seconds)."""

    series_id: int
    source: str
    metric: str
    tenant_id: str | None
    scanned_until: datetime | None
    suppression: float
    last_point_at: datetime | None
    missing_since: datetime | None
    times: NDArray[np.float64]
    values: NDArray[np.float64]
    low_uptime_since: datetime | None = None  # under the uptime bar since (uptime.py)

    @property
    def key(self) -> str:
        """The series' name in the detector state (its profile and precedent memory)."""
        return series_key(self.source, self.metric)

    @property
    def scanned(self) -> bool:
        return is_scanned(self.metric)


def series_key(source: str, metric: str) -> str:
    return f"{source}|{metric}"


def is_scanned(metric: str) -> bool:
    """Cumulative counters are kept for their per-minute rates, which are scanned instead."""
    return not metric.endswith("_total")


@dataclass(frozen=True)
class ScanState:
    series_id: int
    scanned_until: datetime
    suppression: float


class SeriesRepository(Protocol):
    def store_points(self, session: Any, points: Sequence[Point]) -> tuple[int, int]:
        """Create missing series, insert points; a (series, timestamp) already stored is left as it
        is. Returns (stored, duplicates)."""
        ...

    def scan_window(self, session: Any, start: datetime, end: datetime,
                    series_ids: Sequence[int] | None = None) -> list[SeriesWindow]:
        """Every series (or those of `series_ids`) with its points in (start, end], in one read."""
        ...

    def lock_series(self, session: Any, series_ids: Sequence[int]) -> None:
        """Hold these series until the transaction ends, taken in id order as a push takes its own
        (the scan's writes then cannot deadlock with pushes)."""

    def save_scan_state(self, session: Any, states: Sequence[ScanState]) -> None: ...

    def set_missing(self, session: Any, series_ids: Sequence[int], since: datetime | None) -> None: ...

    def set_low_uptime(self, session: Any, series_ids: Sequence[int], since: datetime | None) -> None: ...

    def compact(self, session: Any, raw_before: datetime, rollups_before: datetime) -> dict[str, int]:
        """Hourly rollups of the points before `raw_before`, then those points deleted; rollups
        before `rollups_before` deleted."""
        ...

    def hourly_medians(self, session: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Per series and hour of [start, end): the median (rollups and raw points alike)."""
        ...

    def source_vectors(self, session: Any, metrics: Sequence[str], start: datetime,
                       end: datetime) -> list[dict[str, Any]]:
        """Per (source, minute) of [start, end): {metric: value} of the given metrics."""
        ...

    def series_list(self, session: Any) -> list[dict[str, Any]]: ...

    def tenant_series(self, session: Any, tenant_id: str, *, lock: bool = False) -> set[tuple[str, str]]:
        """The (source, metric) of every series a tenant's service key created. `lock`: the tenant's
        series are held until the transaction ends, so a concurrent push counts what this one adds."""
        ...


_UPSERT_SERIES = """
INSERT INTO metric_series (source, metric, tenant_id)
SELECT s, m, CAST(NULLIF(t, '') AS uuid) FROM unnest(CAST(:sources AS text[]), CAST(:metrics AS text[]),
                                                 CAST(:tenants AS text[])) AS u(s, m, t)
ORDER BY s, m  -- one lock order: pushes creating the same series in other orders cannot deadlock
ON CONFLICT (source, metric) DO NOTHING
"""
# The push's series are locked here, in id order, before its points touch them: the scan locks the
# series it writes in the same order (lock_series), so pushes and scans cannot deadlock.
_SERIES_IDS = """
SELECT series_id, source, metric FROM metric_series
WHERE (source, metric) IN (SELECT * FROM unnest(CAST(:sources AS text[]), CAST(:metrics AS text[])))
ORDER BY series_id FOR NO KEY UPDATE
"""
_LOCK_SERIES = """
SELECT series_id FROM metric_series WHERE series_id = ANY(CAST(:ids AS bigint[])) ORDER BY series_id FOR NO KEY UPDATE
"""
_INSERT_POINTS = """
WITH incoming AS (
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:ts AS timestamptz[]), CAST(:vals AS float8[]))
        AS u(series_id, ts, value)
), stored AS (
    INSERT INTO metric_points (series_id, ts, value) SELECT DISTINCT ON (series_id, ts) * FROM incoming
    ON CONFLICT (series_id, ts) DO NOTHING RETURNING series_id, ts
), touched AS (
    UPDATE metric_series s SET last_point_at = GREATEST(s.last_point_at, n.latest), missing_since = NULL
    FROM (SELECT series_id, max(ts) AS latest FROM stored GROUP BY series_id) n
    WHERE s.series_id = n.series_id RETURNING 1
)
SELECT count(*) FROM stored
"""
_SCAN_WINDOW = """
SELECT s.series_id, s.source, s.metric, s.tenant_id::text AS tenant_id, s.scanned_until, s.suppression,
       s.last_point_at, s.missing_since, s.low_uptime_since,
       array_to_string(p.times, ',') AS times, array_to_string(p.vals, ',') AS vals
FROM metric_series s
LEFT JOIN LATERAL (
    SELECT array_agg(extract(epoch FROM ts)::float8 ORDER BY ts) AS times, array_agg(value ORDER BY ts) AS vals
    FROM metric_points WHERE series_id = s.series_id AND ts > :start AND ts <= :end
) p ON true
WHERE CAST(:ids AS bigint[]) IS NULL OR s.series_id = ANY(CAST(:ids AS bigint[]))
ORDER BY s.series_id
"""
_SAVE_STATE = """
UPDATE metric_series s SET scanned_until = u.until, suppression = u.sup
FROM unnest(CAST(:ids AS bigint[]), CAST(:untils AS timestamptz[]), CAST(:sups AS float8[])) AS u(id, until, sup)
WHERE s.series_id = u.id
"""
_SET_MISSING = "UPDATE metric_series SET missing_since = :since WHERE series_id = ANY(CAST(:ids AS bigint[]))"
_SET_LOW_UPTIME = "UPDATE metric_series SET low_uptime_since = :since WHERE series_id = ANY(CAST(:ids AS bigint[]))"
_ROLLUP = """
INSERT INTO metric_rollups (series_id, hour, points, mean, min, max, median)
SELECT series_id, date_trunc('hour', ts), count(*), avg(value), min(value), max(value),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY value)
FROM metric_points WHERE ts < :before GROUP BY series_id, date_trunc('hour', ts)
ON CONFLICT (series_id, hour) DO UPDATE SET points = metric_rollups.points + EXCLUDED.points,
    mean = (metric_rollups.mean * metric_rollups.points + EXCLUDED.mean * EXCLUDED.points)
           / (metric_rollups.points + EXCLUDED.points),
    min = LEAST(metric_rollups.min, EXCLUDED.min), max = GREATEST(metric_rollups.max, EXCLUDED.max)
"""
_HOURLY_MEDIANS = """
SELECT series_id, hour, median FROM metric_rollups WHERE hour >= :start AND hour < :end
UNION ALL
SELECT series_id, date_trunc('hour', ts) AS hour, percentile_cont(0.5) WITHIN GROUP (ORDER BY value)
FROM metric_points WHERE ts >= :start AND ts < :end GROUP BY series_id, date_trunc('hour', ts)
"""
_SOURCE_VECTORS = """
SELECT s.source, date_trunc('minute', p.ts) AS minute, jsonb_object_agg(s.metric, p.value) AS vector
FROM metric_points p JOIN metric_series s USING (series_id)
WHERE s.metric = ANY(CAST(:metrics AS text[])) AND p.ts >= :start AND p.ts < :end
GROUP BY s.source, date_trunc('minute', p.ts)
ORDER BY minute
"""


def _floats(text: str | None) -> NDArray[np.float64]:
    # Text of the arrays parses an order of magnitude faster than pg8000's per-element arrays.
    if not text:
        return np.empty(0)
    return np.array(text.split(","), dtype=np.float64)


class PostgresSeriesRepository:
    def store_points(self, session: Any, points: Sequence[Point]) -> tuple[int, int]:
        if not points:
            return 0, 0
        keys = {(p.source, p.metric): p.tenant_id or "" for p in points}
        sources, metrics = [k[0] for k in keys], [k[1] for k in keys]
        session.execute(_UPSERT_SERIES, sources=sources, metrics=metrics, tenants=list(keys.values()))
        ids = {(r["source"], r["metric"]): r["series_id"]
               for r in session.fetch_all(_SERIES_IDS, sources=sources, metrics=metrics)}
        stored = session.fetch_value(
            _INSERT_POINTS, ids=[ids[(p.source, p.metric)] for p in points], ts=[p.ts for p in points],
            vals=[float(p.value) for p in points])
        return int(stored), len(points) - int(stored)

    def scan_window(self, session: Any, start: datetime, end: datetime,
                    series_ids: Sequence[int] | None = None) -> list[SeriesWindow]:
        ids = None if series_ids is None else list(series_ids)
        return [SeriesWindow(r["series_id"], r["source"], r["metric"], r["tenant_id"], r["scanned_until"],
                             float(r["suppression"]), r["last_point_at"], r["missing_since"], _floats(r["times"]),
                             _floats(r["vals"]), r["low_uptime_since"])
                for r in session.fetch_all(_SCAN_WINDOW, start=start, end=end, ids=ids)]

    def lock_series(self, session: Any, series_ids: Sequence[int]) -> None:
        if series_ids:
            session.fetch_all(_LOCK_SERIES, ids=list(series_ids))

    def save_scan_state(self, session: Any, states: Sequence[ScanState]) -> None:
        if states:
            session.execute(_SAVE_STATE, ids=[s.series_id for s in states],
                            untils=[s.scanned_until for s in states], sups=[s.suppression for s in states])

    def set_missing(self, session: Any, series_ids: Sequence[int], since: datetime | None) -> None:
        if series_ids:
            session.execute(_SET_MISSING, ids=list(series_ids), since=since)

    def set_low_uptime(self, session: Any, series_ids: Sequence[int], since: datetime | None) -> None:
        if series_ids:
            session.execute(_SET_LOW_UPTIME, ids=list(series_ids), since=since)

    def compact(self, session: Any, raw_before: datetime, rollups_before: datetime) -> dict[str, int]:
        rolled = session.execute(_ROLLUP, before=raw_before)
        deleted = session.execute("DELETE FROM metric_points WHERE ts < :before", before=raw_before)
        expired = session.execute("DELETE FROM metric_rollups WHERE hour < :before", before=rollups_before)
        return {"rollups_written": rolled, "points_deleted": deleted, "rollups_deleted": expired}

    def hourly_medians(self, session: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
        return session.fetch_all(_HOURLY_MEDIANS, start=start, end=end)

    def source_vectors(self, session: Any, metrics: Sequence[str], start: datetime,
                       end: datetime) -> list[dict[str, Any]]:
        return session.fetch_all(_SOURCE_VECTORS, metrics=list(metrics), start=start, end=end)

    def series_list(self, session: Any) -> list[dict[str, Any]]:
        return session.fetch_all(
            "SELECT series_id, source, metric, tenant_id::text AS tenant_id, last_point_at, missing_since"
            " FROM metric_series ORDER BY source, metric")

    def tenant_series(self, session: Any, tenant_id: str, *, lock: bool = False) -> set[tuple[str, str]]:
        if lock:
            session.advisory_lock(f"monitoring/tenant-series/{tenant_id}")
        rows = session.fetch_all("SELECT source, metric FROM metric_series WHERE tenant_id = CAST(:t AS uuid)",
                                 t=tenant_id)
        return {(r["source"], r["metric"]) for r in rows}


@dataclass
class _Series:
    series_id: int
    source: str
    metric: str
    tenant_id: str | None
    points: dict[datetime, float] = field(default_factory=dict)
    scanned_until: datetime | None = None
    suppression: float = 0.0
    missing_since: datetime | None = None
    low_uptime_since: datetime | None = None


class InMemorySeriesRepository:
    def __init__(self) -> None:
        self.series: dict[tuple[str, str], _Series] = {}
        self.rollups: dict[tuple[int, datetime], dict[str, float]] = {}
        self._lock = threading.Lock()

    def _by_id(self) -> dict[int, _Series]:
        return {s.series_id: s for s in self.series.values()}

    def store_points(self, session: Any, points: Sequence[Point]) -> tuple[int, int]:
        stored = 0
        with self._lock:
            for p in points:
                series = self.series.setdefault(
                    (p.source, p.metric), _Series(len(self.series) + 1, p.source, p.metric, p.tenant_id))
                if p.ts not in series.points:
                    series.points[p.ts] = float(p.value)
                    series.missing_since = None
                    stored += 1
        return stored, len(points) - stored

    def scan_window(self, session: Any, start: datetime, end: datetime,
                    series_ids: Sequence[int] | None = None) -> list[SeriesWindow]:
        windows = []
        for s in sorted(self.series.values(), key=lambda s: s.series_id):
            if series_ids is not None and s.series_id not in series_ids:
                continue
            stamps = sorted(ts for ts in s.points if start < ts <= end)
            windows.append(SeriesWindow(
                s.series_id, s.source, s.metric, s.tenant_id, s.scanned_until, s.suppression,
                max(s.points) if s.points else None, s.missing_since,
                np.array([ts.timestamp() for ts in stamps], dtype=np.float64),
                np.array([s.points[ts] for ts in stamps], dtype=np.float64), s.low_uptime_since))
        return windows

    def lock_series(self, session: Any, series_ids: Sequence[int]) -> None:
        pass  # the fakes run one request at a time

    def save_scan_state(self, session: Any, states: Sequence[ScanState]) -> None:
        by_id = self._by_id()
        for state in states:
            by_id[state.series_id].scanned_until = state.scanned_until
            by_id[state.series_id].suppression = state.suppression

    def set_missing(self, session: Any, series_ids: Sequence[int], since: datetime | None) -> None:
        by_id = self._by_id()
        for series_id in series_ids:
            by_id[series_id].missing_since = since

    def set_low_uptime(self, session: Any, series_ids: Sequence[int], since: datetime | None) -> None:
        by_id = self._by_id()
        for series_id in series_ids:
            by_id[series_id].low_uptime_since = since

    def compact(self, session: Any, raw_before: datetime, rollups_before: datetime) -> dict[str, int]:
        written = deleted = 0
        for s in self.series.values():
            hours: dict[datetime, list[float]] = defaultdict(list)
            for ts in [ts for ts in s.points if ts < raw_before]:
                hours[ts.replace(minute=0, second=0, microsecond=0)].append(s.points.pop(ts))
                deleted += 1
            for hour, values in hours.items():
                self.rollups[(s.series_id, hour)] = {"points": len(values), "mean": float(np.mean(values)),
                                                     "median": float(np.median(values))}
                written += 1
        expired = [key for key in self.rollups if key[1] < rollups_before]
        for key in expired:
            del self.rollups[key]
        return {"rollups_written": written, "points_deleted": deleted, "rollups_deleted": len(expired)}

    def hourly_medians(self, session: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rows = [{"series_id": sid, "hour": hour, "median": r["median"]}
                for (sid, hour), r in self.rollups.items() if start <= hour < end]
        for s in self.series.values():
            hours: dict[datetime, list[float]] = defaultdict(list)
            for ts, value in s.points.items():
                if start <= ts < end:
                    hours[ts.replace(minute=0, second=0, microsecond=0)].append(value)
            rows.extend({"series_id": s.series_id, "hour": h, "median": float(np.median(v))} for h, v in hours.items())
        return rows

    def source_vectors(self, session: Any, metrics: Sequence[str], start: datetime,
                       end: datetime) -> list[dict[str, Any]]:
        vectors: dict[tuple[str, datetime], dict[str, float]] = defaultdict(dict)
        for s in self.series.values():
            if s.metric in metrics:
                for ts, value in s.points.items():
                    if start <= ts < end:
                        vectors[(s.source, ts.replace(second=0, microsecond=0))][s.metric] = value
        return [{"source": k[0], "minute": k[1], "vector": v} for k, v in sorted(vectors.items(), key=lambda i: i[0][1])]

    def series_list(self, session: Any) -> list[dict[str, Any]]:
        return [{"series_id": s.series_id, "source": s.source, "metric": s.metric, "tenant_id": s.tenant_id,
                 "last_point_at": max(s.points) if s.points else None, "missing_since": s.missing_since}
                for s in sorted(self.series.values(), key=lambda s: (s.source, s.metric))]

    def tenant_series(self, session: Any, tenant_id: str, *, lock: bool = False) -> set[tuple[str, str]]:
        return {(s.source, s.metric) for s in self.series.values() if s.tenant_id == tenant_id}


def since(end: datetime, minutes: int) -> datetime:
    return end - timedelta(minutes=minutes)
