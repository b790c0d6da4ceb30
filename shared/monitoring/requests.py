"""What an API process records of each request: Prometheus counters and a histogram (GET
/metrics), and per-minute timings per route, flushed to the database at most once a minute (the
minute collection reads them) with a CloudWatch embedded-metric-format line per route.

Recording never fails a request: a flush that cannot reach the database keeps the minute's
timings for the next try (bounded) and logs."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from shared.logs import log_event
from shared.monitoring.timings_repository import RouteMinute, TimingsRepository
from shared.platform.transactions import Transactions

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_PENDING_MINUTES = 10
# At most this many latencies per route and minute are kept (the percentiles' sample).
MAX_LATENCIES = 2000

REGISTRY = CollectorRegistry()
REQUESTS = Counter("mlstack_requests", "HTTP requests answered", ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram("mlstack_request_latency_seconds", "Time to answer a request", ["method", "route"],
                    registry=REGISTRY, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
FLUSH_FAILURES = Counter("mlstack_timing_flush_failures", "Per-minute timings that could not be stored",
                         registry=REGISTRY)


class RequestRecorder:
    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC), emf: bool = False) -> None:
        self._clock = clock
        self._emf = emf
        self._lock = threading.Lock()
        self._minutes: dict[datetime, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
        # After a failed flush, the next try waits a minute (a database that is down must not cost
        # every request a connection attempt).
        self._retry_after: datetime | None = None

    def record(self, method: str, route: str, status: int, latency_ms: float) -> None:
        REQUESTS.labels(method, route, str(status)).inc()
        LATENCY.labels(method, route).observe(latency_ms / 1000.0)
        minute = self._clock().replace(second=0, microsecond=0)
        with self._lock:
            entry = self._minutes[minute].setdefault((method, route), {"requests": 0, "errors": 0, "latency": []})
            entry["requests"] += 1
            entry["errors"] += int(status >= 500)
            if len(entry["latency"]) < MAX_LATENCIES:
                entry["latency"].append(round(latency_ms, 3))

    def due(self) -> bool:
        """A minute has ended since it was recorded."""
        now = self._clock()
        if self._retry_after is not None and now < self._retry_after:
            return False
        current = now.replace(second=0, microsecond=0)
        return any(minute < current for minute in self._minutes)

    def flush(self, transactions: Transactions, repository: TimingsRepository) -> int:
        """Store every completed minute; returns the rows written."""
        current = self._clock().replace(second=0, microsecond=0)
        with self._lock:
            done = {m: routes for m, routes in self._minutes.items() if m < current}
            for minute in done:
                del self._minutes[minute]
        rows = [RouteMinute(minute, method, route, e["requests"], e["errors"], tuple(e["latency"]))
                for minute, routes in sorted(done.items()) for (method, route), e in routes.items()]
        if not rows:
            return 0
        try:
            with transactions.transaction() as tx:
                repository.flush(tx, rows)
        except Exception as exc:  # noqa: BLE001 - a request must never fail for its metrics
            FLUSH_FAILURES.inc()
            self._retry_after = self._clock() + timedelta(minutes=1)
            log_event("monitoring.timings_flush_failed", error=str(exc)[:200])
            with self._lock:
                for minute, routes in done.items():
                    if len(self._minutes) < MAX_PENDING_MINUTES:
                        self._minutes[minute].update(routes)
            return 0
        if self._emf:
            for row in rows:
                emit_emf("mlstack", {"Route": row.route, "Method": row.method},
                         {"Requests": (row.requests, "Count"), "Errors": (row.errors, "Count")}, row.minute)
        return len(rows)


def emit_emf(namespace: str, dimensions: dict[str, str], metrics: dict[str, tuple[float, str]],
             at: datetime) -> None:
    """One CloudWatch embedded-metric-format line: CloudWatch turns it into metrics, no API call."""
    fields: dict[str, Any] = {"_aws": {
        "Timestamp": int(at.timestamp() * 1000),
        "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [sorted(dimensions)],
                               "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()]}],
    }, **dimensions, **{name: value for name, (value, _) in metrics.items()}}
    log_event("metrics.emf", **fields)


def prometheus_exposition() -> bytes:
    result: bytes = generate_latest(REGISTRY)
    return result


_RECORDER: RequestRecorder | None = None


def recorder(emf: bool = False) -> RequestRecorder:
    """The process's recorder (one per warm function)."""
    global _RECORDER
    if _RECORDER is None:
        _RECORDER = RequestRecorder(emf=emf)
    return _RECORDER
