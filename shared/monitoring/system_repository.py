"""What the service can read of its own database: connections by state, transaction, rollback and
deadlock counters, size, and predictions per model kind (each kind's prediction table, named by the
composition layer, never imported from its slice)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class SystemRepository(Protocol):
    def database_readings(self, session: Any) -> dict[str, float]:
        """Gauges (connections by state, size) and cumulative counters (commits, rollbacks, deadlocks)."""
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


class PostgresSystemRepository:
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

    def database_readings(self, session: Any) -> dict[str, float]:
        return dict(self.readings)

    def predictions_since(self, session: Any, tables: Mapping[str, str], start: datetime,
                          end: datetime) -> dict[str, int]:
        return {kind: self.predictions.get(kind, 0) for kind in tables}
