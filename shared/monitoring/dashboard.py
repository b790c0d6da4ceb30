"""The unified monitoring dashboard's data (operator, JSON): infrastructure health (the latest value
of every platform series, the share of the last day's minutes it reported in, the open incidents
per source), the anomaly timeline with the metric
drawn around each anomaly, which alerts fired together, and one series over a window downsampled
to at most `points` buckets of min/max/mean (a month of one-minute points stays a few KB)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import NotFound
from shared.monitoring import timeline_repository as repo
from shared.monitoring.services import MonitoringServices

AROUND_MINUTES = 120  # the metric drawn two hours either side of an anomaly
TOGETHER_MINUTES = 10  # alerts whose first points lie this close fired together
MINUTE = 60
# A series' reporting share (the seed's "metrics uptime" bar, 99 %) is read over the last day of
# whole minutes: the current minute's points may still be on their way.
REPORTED_WINDOW = timedelta(hours=24)


class DashboardQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int = Field(default=30, ge=1, le=90)
    anomalies: int = Field(default=12, ge=1, le=100)


class SeriesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=200)
    metric: str = Field(min_length=1, max_length=200)
    days: int = Field(default=30, ge=1, le=90)
    points: int = Field(default=1000, ge=10, le=5000, description="at most this many buckets (min/max/mean each)")


def monitoring_dashboard(services: MonitoringServices, query: DashboardQuery,
                         now: datetime | None = None) -> dict[str, Any]:
    end = now or datetime.now(UTC)
    start = end - timedelta(days=query.days)
    until = end.replace(second=0, microsecond=0)
    with services.transactions.transaction() as tx:
        latest = repo.latest_values(tx, until - REPORTED_WINDOW, until)
        anomalies = repo.anomalies(tx, start, end, AROUND_MINUTES, query.anomalies)
        together = repo.fired_together(tx, start, end, TOGETHER_MINUTES, 20)
        open_incidents = services.alerts.incidents(tx, status="open", tenant_id=None, limit=500)
    open_by_source: dict[str, int] = {}
    for incident in open_incidents:
        open_by_source[incident["source"]] = open_by_source.get(incident["source"], 0) + 1
    return {
        "window": {"start": start, "end": end, "days": query.days},
        "health": {
            "series": [_with_reporting(row, until) for row in latest],
            "open_incidents_by_source": open_by_source,
            "reported_window_hours": REPORTED_WINDOW.total_seconds() / 3600,
        },
        "anomalies": anomalies,
        "fired_together": [{
            **row, "together": int(row["together"]),
            "share": round(int(row["together"]) / max(1, min(int(row["first_alerts"]), int(row["second_alerts"]))), 4),
        } for row in together],
        "fired_together_within_minutes": TOGETHER_MINUTES,
    }


def _with_reporting(row: dict[str, Any], until: datetime) -> dict[str, Any]:
    """The row with `stale` (alerted as missing) and `reported_share`: the share of the window's
    minutes since the series' first point in it that have a point (None: no point in the window).
    A series collected every minute that never missed one has 1.0; it assumes that one-minute
    cadence (collect-metrics, the agent's default interval)."""
    first, minutes = row.pop("first_reported_minute"), int(row.pop("reported_minutes") or 0)
    share = None
    if first is not None and minutes:
        expected = max(1, int((until - first).total_seconds() // MINUTE))
        share = round(min(1.0, minutes / expected), 4)
    return {**row, "stale": row["missing_since"] is not None, "reported_share": share}


def series_window(services: MonitoringServices, query: SeriesQuery, now: datetime | None = None) -> dict[str, Any]:
    end = now or datetime.now(UTC)
    start = end - timedelta(days=query.days)
    span = (end - start).total_seconds()
    # Buckets are aligned to the epoch, so the window's ends add one partial bucket: points - 1 whole ones.
    bucket = max(MINUTE, int(math.ceil(span / (query.points - 1) / MINUTE)) * MINUTE)
    with services.transactions.transaction() as tx:
        rows = repo.downsampled(tx, query.source, query.metric, start, end, bucket)
        if not rows and not repo.series_exists(tx, query.source, query.metric):
            # A misspelt name is not a quiet series; one without points in the window is an empty one.
            raise NotFound(f"no series {query.source} {query.metric}")
    return {
        "source": query.source, "metric": query.metric, "start": start, "end": end, "bucket_seconds": bucket,
        "raw_points": sum(int(r["points"]) for r in rows),
        "t": [float(r["t"]) for r in rows], "min": [float(r["low"]) for r in rows],
        "max": [float(r["high"]) for r in rows], "mean": [_bucket_mean(r) for r in rows],
    }


def _bucket_mean(row: dict[str, Any]) -> float:
    """The mean to 6 decimals, kept within the bucket's min and max: rounding (or the float sum
    behind avg) could otherwise put a one-point bucket's mean just outside its own band."""
    return min(max(round(float(row["mean"]), 6), float(row["low"])), float(row["high"]))
