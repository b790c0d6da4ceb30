"""The minute collection: what the service can see of itself becomes points of the minute that
just ended (source `database`, `queue:<name>`, `api`, `predictions`), stored like the agent's.
Cumulative PostgreSQL counters become per-minute rates against the previous minute's reading.

Slowest statements: where pg_stat_statements is installed, the mean time of the statements with
the most total time (`statement <queryid> mean_ms`, the top SLOWEST_STATEMENTS) and the slowest
mean among them (`slowest_statement_mean_ms`); without it, the service's own timings per route
(`api`, p50/p95/p99) are what the collection has of query time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.monitoring.series_repository import Point
from shared.monitoring.services import MonitoringServices

CUMULATIVE = ("commits_total", "rollbacks_total", "deadlocks_total")
SLOWEST_STATEMENTS = 5


def _route_metric(method: str, route: str, name: str) -> str:
    return f"{method} {route} {name}"


def collect(services: MonitoringServices, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    previous = minute - timedelta(minutes=1)
    points: list[Point] = []
    queues = services.queues.readings()
    with services.transactions.transaction() as tx:
        readings = services.system.database_readings(tx)
        for name, value in readings.items():
            points.append(Point("database", name, minute, value))
        for route in services.timings.summary(tx, previous, minute):
            for name in ("requests", "errors", "p50_ms", "p95_ms", "p99_ms"):
                if route[name] is not None:
                    points.append(Point("api", _route_metric(route["method"], route["route"], name), previous,
                                        float(route[name])))
            if route["requests"]:
                points.append(Point("api", _route_metric(route["method"], route["route"], "error_rate"), previous,
                                    route["errors"] / route["requests"]))
        points.extend(_statements(services, tx, minute))
        for kind, count in services.system.predictions_since(tx, services.watched, previous, minute).items():
            points.append(Point("predictions", kind, previous, float(count)))
        for queue, values in queues.items():
            points.extend(Point(f"queue:{queue}", name, minute, value) for name, value in values.items())
        points.extend(_rates(services, tx, readings, minute))
        stored, duplicates = services.series.store_points(tx, points)
    return {"minute": minute.isoformat(), "points": stored, "duplicates": duplicates}


def _statements(services: MonitoringServices, tx: Any, minute: datetime) -> list[Point]:
    statements = services.system.slowest_statements(tx, SLOWEST_STATEMENTS)
    if not statements:
        return []
    points = [Point("database", f"statement {row['queryid']} mean_ms", minute, float(row["mean_ms"]))
              for row in statements]
    points.append(Point("database", "slowest_statement_mean_ms", minute, max(float(r["mean_ms"]) for r in statements)))
    return points


def _rates(services: MonitoringServices, tx: Any, readings: dict[str, float], minute: datetime) -> list[Point]:
    """commits, rollbacks, deadlocks per minute: this reading less the last stored one."""
    windows = {w.metric: w for w in services.series.scan_window(tx, minute - timedelta(minutes=5), minute)
               if w.source == "database" and w.metric in CUMULATIVE}
    rates = []
    for name in CUMULATIVE:
        window = windows.get(name)
        if window is not None and len(window.values) and name in readings:
            # A counter reset (server restart) is not a negative rate.
            rates.append(Point("database", name.replace("_total", "_per_minute"), minute,
                               max(readings[name] - float(window.values[-1]), 0.0)))
    return rates
