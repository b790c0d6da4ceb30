"""Monitoring demo data for the local run: a month of one-minute points for a few hosts and the
API, with anomalies injected (some on two series at once), scanned by the real scan at the moments
it would have run after each, so incidents, alerts and the anomaly timeline exist on first start."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.monitoring.demo_repository import has_series, rewind_scans, seed_series
from shared.monitoring.scan import scan
from shared.monitoring.services import MonitoringServices

SCORED_BEFORE = timedelta(hours=2)


@dataclass(frozen=True)
class DemoSeries:
    source: str
    metric: str
    base: float
    daily: float
    noise: float
    height: float  # what an injected anomaly adds
    spikes_hours_ago: tuple[float, ...]
    minutes: int = 6


# Hours before now of the injected anomalies; web-1's CPU and the API's p95 share two of them,
# so the dashboard's "fired together" has a pair to show.
DEMO_SERIES = (
    DemoSeries("host-web-1", "cpu_percent", 35, 15, 6, 55, (600.5, 300.2, 30.1, 5.1)),
    DemoSeries("host-web-1", "memory_percent", 55, 4, 2, 35, (420.3,)),
    DemoSeries("host-web-2", "cpu_percent", 30, 14, 6, 60, (150.4, 2.6)),
    DemoSeries("host-db-1", "cpu_percent", 25, 10, 5, 65, (200.2, 12.3)),
    DemoSeries("host-db-1", "disk_write_bytes_per_s", 4.0e6, 1.5e6, 8.0e5, 2.5e7, (100.7,)),
    DemoSeries("api", "p95_latency_ms", 120, 40, 25, 900, (300.2, 30.1, 18.4)),
)


def seed_monitoring_demo(services: MonitoringServices, *, days: int = 30, now: datetime | None = None) -> dict[str, Any]:
    end = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    first = DEMO_SERIES[0]
    with services.transactions.transaction() as tx:
        if has_series(tx, first.source, first.metric):
            return {"series": 0, "skipped": "demo series exist"}
    spikes = sorted({end - timedelta(hours=h) for s in DEMO_SERIES for h in s.spikes_hours_ago})
    with services.transactions.transaction() as tx:
        for series in DEMO_SERIES:
            at = [(end - timedelta(hours=h)).replace(second=0, microsecond=0) for h in series.spikes_hours_ago]
            seed_series(tx, series.source, series.metric, start, end, base=series.base, daily=series.daily,
                        noise=series.noise, spikes=at, height=series.height, minutes=series.minutes)
    alerts = 0
    sources = sorted({s.source for s in DEMO_SERIES})
    # The scan as it would have run just after each anomaly (it reads a day back for context), then
    # now; each scores only the two hours before it, as the minute scans would have by then.
    for moment in [*(at + timedelta(minutes=15) for at in spikes if at + timedelta(minutes=15) < end), end]:
        with services.transactions.transaction() as tx:
            rewind_scans(tx, sources, moment - SCORED_BEFORE)
        result = scan(services, now=moment)
        alerts += int(result.get("alerts", 0) or 0)
    return {"series": len(DEMO_SERIES), "points": len(DEMO_SERIES) * (days * 1440 + 1), "scans": len(spikes) + 1,
            "alerts": alerts}
