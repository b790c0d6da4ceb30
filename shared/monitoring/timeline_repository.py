"""What the monitoring dashboard reads: the latest value of every platform series (and the minutes
of the last day it reported in), one series
downsampled to min/max/mean per bucket (a month of one-minute points in a few hundred rows), the
anomaly alerts of a window with the metric's points around each, and which alerts fired together."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.adapters.db import Transaction

_LATEST = """
SELECT s.source, s.metric, s.last_point_at, s.missing_since, p.value, r.minutes AS reported_minutes,
       r.first_minute AS first_reported_minute
FROM metric_series s
LEFT JOIN LATERAL (SELECT value FROM metric_points WHERE series_id = s.series_id ORDER BY ts DESC LIMIT 1) p ON true
LEFT JOIN LATERAL (
    SELECT count(DISTINCT date_trunc('minute', ts)) AS minutes, date_trunc('minute', min(ts)) AS first_minute
    FROM metric_points WHERE series_id = s.series_id
      AND ts >= CAST(:since AS timestamptz) AND ts < CAST(:until AS timestamptz)
) r ON true
WHERE s.tenant_id IS NULL ORDER BY s.source, s.metric LIMIT :limit
"""
_DOWNSAMPLED = """
SELECT floor(extract(epoch FROM p.ts) / :bucket) * :bucket AS t, min(p.value) AS low, max(p.value) AS high,
       avg(p.value) AS mean, count(*) AS points
FROM metric_points p JOIN metric_series s ON s.series_id = p.series_id
WHERE s.source = :source AND s.metric = :metric
  AND p.ts >= CAST(:start AS timestamptz) AND p.ts < CAST(:end AS timestamptz)
GROUP BY 1 ORDER BY 1
"""
_ANOMALIES = """
SELECT a.alert_id::text AS alert_id, a.incident_id::text AS incident_id, a.source, a.metric, a.score, a.value,
       a.first_at, a.last_at, a.occurrences, a.reasons, a.silenced, i.status AS incident_status,
       array_to_string(p.times, ',') AS times, array_to_string(p.vals, ',') AS vals
FROM monitoring_alerts a
JOIN monitoring_incidents i ON i.incident_id = a.incident_id
LEFT JOIN metric_series s ON s.source = a.source AND s.metric = a.metric
LEFT JOIN LATERAL (
    SELECT array_agg(extract(epoch FROM ts)::float8 ORDER BY ts) AS times, array_agg(value ORDER BY ts) AS vals
    FROM metric_points WHERE series_id = s.series_id
      AND ts >= a.first_at - make_interval(mins => :around) AND ts <= a.last_at + make_interval(mins => :around)
) p ON true
WHERE a.alert_type = 'anomaly' AND a.first_at >= CAST(:start AS timestamptz) AND a.first_at < CAST(:end AS timestamptz)
ORDER BY a.first_at DESC LIMIT :limit
"""
_TOGETHER = """
WITH recent AS (
    SELECT source || ' ' || metric AS series, first_at FROM monitoring_alerts
    WHERE first_at >= CAST(:start AS timestamptz) AND first_at < CAST(:end AS timestamptz)
), counts AS (SELECT series, count(*) AS alerts FROM recent GROUP BY series)
SELECT a.series AS first, b.series AS second, count(*) AS together, ca.alerts AS first_alerts,
       cb.alerts AS second_alerts
FROM recent a JOIN recent b ON a.series < b.series
     AND b.first_at BETWEEN a.first_at - make_interval(mins => :within) AND a.first_at + make_interval(mins => :within)
JOIN counts ca ON ca.series = a.series JOIN counts cb ON cb.series = b.series
GROUP BY a.series, b.series, ca.alerts, cb.alerts ORDER BY together DESC, first, second LIMIT :limit
"""


def latest_values(tx: Transaction, since: datetime, until: datetime, limit: int = 500) -> list[dict[str, Any]]:
    """Every platform series' latest value, with the minutes of [since, until) it reported in and
    the first of them."""
    return tx.fetch_all(_LATEST, since=since, until=until, limit=limit)


def downsampled(tx: Transaction, source: str, metric: str, start: datetime, end: datetime,
                bucket_seconds: int) -> list[dict[str, Any]]:
    return tx.fetch_all(_DOWNSAMPLED, source=source, metric=metric, start=start, end=end, bucket=bucket_seconds)


def series_exists(tx: Transaction, source: str, metric: str) -> bool:
    return tx.fetch_value("SELECT EXISTS (SELECT 1 FROM metric_series WHERE source = :source AND metric = :metric)",
                          source=source, metric=metric) is True


def anomalies(tx: Transaction, start: datetime, end: datetime, around_minutes: int, limit: int) -> list[dict[str, Any]]:
    rows = tx.fetch_all(_ANOMALIES, start=start, end=end, around=around_minutes, limit=limit)
    for row in rows:
        times, values = row.pop("times"), row.pop("vals")
        row["points"] = {"t": [float(v) for v in times.split(",")] if times else [],
                         "value": [float(v) for v in values.split(",")] if values else []}
    return rows


def fired_together(tx: Transaction, start: datetime, end: datetime, within_minutes: int,
                   limit: int) -> list[dict[str, Any]]:
    return tx.fetch_all(_TOGETHER, start=start, end=end, within=within_minutes, limit=limit)
