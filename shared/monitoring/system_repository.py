"""What the service can read of its own database: connections by state, transaction, rollback and
deadlock counters, size, and predictions per model kind (each kind's prediction table, named by the
composition layer, never imported from its slice)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.logs import log_event


class SystemRepository(Protocol):
    def database_readings(self, session: Any) -> dict[str, float]:
        """Gauges (connections by state, size) and cumulative counters (commits, rollbacks, deadlocks)."""
        ...

    def slowest_statements(self, session: Any, limit: int) -> list[dict[str, Any]] | None:
        """The statements with the most total execution time (pg_stat_statements: queryid, query,
        calls, mean_ms, total_ms), or None where the extension is not installed."""
        ...

    def predictions_since(self, session: Any, tables: Mapping[str, str], start: datetime,
                          end: datetime) -> dict[str, int]:
        """kind -> answers logged in [start, end) (shadow scores left out)."""
        ...


_DATABASE = """
SELECT xact_commit::float8 AS commits, xact_rollback::float8 AS rollbacks, deadlocks::float8 AS deadlocks,
       pg_database_size(current_database())::float8 AS size_bytes
FROM pg_stat_database WHERE datname = current_database()
"""
_CONNECTIONS = """
SELECT coalesce(state, 'unknown') AS state, count(*)::float8 AS n FROM pg_stat_activity
WHERE datname = current_database() GROUP BY coalesce(state, 'unknown')
"""


_HAS_STATEMENTS = "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"
# This database's statements only (the view spans the cluster); mean and total since the last reset.
_STATEMENTS = """
SELECT queryid::text AS queryid, left(query, 200) AS query, calls::float8 AS calls,
       mean_exec_time AS mean_ms, total_exec_time AS total_ms
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = current_database() AND calls > 0
ORDER BY total_exec_time DESC LIMIT :limit
"""


class PostgresSystemRepository:
    def slowest_statements(self, session: Any, limit: int) -> list[dict[str, Any]] | None:
        if not session.fetch_value(_HAS_STATEMENTS):
            return None
        # Installed is not readable: without shared_preload_libraries (or the role's right to see
        # other roles' statements) the view raises; the savepoint keeps the collection's transaction.
        session.execute("SAVEPOINT slowest_statements")
        try:
            rows: list[dict[str, Any]] = session.fetch_all(_STATEMENTS, limit=limit)
        except Exception as exc:  # noqa: BLE001 - the other readings still count
            session.execute("ROLLBACK TO SAVEPOINT slowest_statements")
            log_event("monitoring.statements_unavailable", error=str(exc)[:200])
            return None
        session.execute("RELEASE SAVEPOINT slowest_statements")
        return rows

    def database_readings(self, session: Any) -> dict[str, float]:
        readings = {f"{k}_total" if k != "size_bytes" else k: float(v)
                    for k, v in (session.fetch_one(_DATABASE) or {}).items()}
        states = {row["state"]: float(row["n"]) for row in session.fetch_all(_CONNECTIONS)}
        for state in ("active", "idle", "idle in transaction"):
            readings[f"connections_{state.replace(' ', '_')}"] = states.pop(state, 0.0)
        readings["connections_other"] = sum(states.values())
        return readings

    def predictions_since(self, session: Any, tables: Mapping[str, str], start: datetime,
                          end: datetime) -> dict[str, int]:
        counts = {}
        for kind, table in tables.items():
            # `table` comes from code (the composition layer's list), never from a request.
            counts[kind] = int(session.fetch_value(
                f"SELECT count(*) FROM {table} WHERE predicted_at >= :start AND predicted_at < :end"
                " AND variant <> 'shadow'", start=start, end=end))
        return counts


@dataclass
class InMemorySystemRepository:
    readings: dict[str, float] = field(default_factory=dict)
    predictions: dict[str, int] = field(default_factory=dict)
    statements: list[dict[str, Any]] | None = None

    def slowest_statements(self, session: Any, limit: int) -> list[dict[str, Any]] | None:
        return None if self.statements is None else sorted(self.statements, key=lambda r: -r["total_ms"])[:limit]

    def database_readings(self, session: Any) -> dict[str, float]:
        return dict(self.readings)

    def predictions_since(self, session: Any, tables: Mapping[str, str], start: datetime,
                          end: datetime) -> dict[str, int]:
        return {kind: self.predictions.get(kind, 0) for kind in tables}
