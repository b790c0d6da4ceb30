"""The application's request timings per minute and route, as each API process flushes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class RouteMinute:
    minute: datetime
    method: str
    route: str
    requests: int
    errors: int
    latency_ms: tuple[float, ...]


class TimingsRepository(Protocol):
    def flush(self, session: Any, rows: Sequence[RouteMinute]) -> None: ...

    def summary(self, session: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Per (method, route) of [start, end): requests, errors, p50/p95/p99 latency."""
        ...


class PostgresTimingsRepository:
    def flush(self, session: Any, rows: Sequence[RouteMinute]) -> None:
        for row in rows:
            session.execute(
                "INSERT INTO request_timings (minute, method, route, requests, errors, latency_ms)"
                " VALUES (:minute, :method, :route, :requests, :errors, CAST(:latency AS float8[]))",
                minute=row.minute, method=row.method, route=row.route, requests=row.requests, errors=row.errors,
                latency=list(row.latency_ms))

    def summary(self, session: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
        return session.fetch_all(
            "WITH r AS (SELECT * FROM request_timings WHERE minute >= :start AND minute < :end),"
            " totals AS (SELECT method, route, sum(requests)::int AS requests, sum(errors)::int AS errors"
            "            FROM r GROUP BY method, route),"
            " latencies AS (SELECT method, route,"
            "   percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY l) AS p"
            "   FROM r, unnest(r.latency_ms) AS l GROUP BY method, route)"
            " SELECT t.method, t.route, t.requests, t.errors, l.p[1] AS p50_ms, l.p[2] AS p95_ms, l.p[3] AS p99_ms"
            " FROM totals t LEFT JOIN latencies l USING (method, route) ORDER BY t.route, t.method",
            start=start, end=end)


@dataclass
class InMemoryTimingsRepository:
    rows: list[RouteMinute] = field(default_factory=list)

    def flush(self, session: Any, rows: Sequence[RouteMinute]) -> None:
        self.rows.extend(rows)

    def summary(self, session: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
        import numpy as np

        grouped: dict[tuple[str, str], list[RouteMinute]] = {}
        for row in self.rows:
            if start <= row.minute < end:
                grouped.setdefault((row.method, row.route), []).append(row)
        out = []
        for (method, route), rows in sorted(grouped.items(), key=lambda i: (i[0][1], i[0][0])):
            latencies = [v for r in rows for v in r.latency_ms]
            p = np.quantile(latencies, [0.5, 0.95, 0.99]).tolist() if latencies else [None] * 3
            out.append({"method": method, "route": route, "requests": sum(r.requests for r in rows),
                        "errors": sum(r.errors for r in rows), "p50_ms": p[0], "p95_ms": p[1], "p99_ms": p[2]})
        return out
