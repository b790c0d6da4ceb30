"""Serving inputs from a kind's prediction log, and the drift reports computed from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

# The newest rows of a window are enough to judge it (and bound the read on a busy kind).
SERVING_ROWS_LIMIT = 50_000


class DriftRepository(Protocol):
    def serving_features(self, session: Any, table: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """{tenant_id, features} of answers (not shadow scores) logged in [start, end), newest first."""
        ...

    def store_reports(self, session: Any, rows: Sequence[dict[str, Any]]) -> None: ...

    def latest_reports(self, session: Any, tenant_id: str | None) -> list[dict[str, Any]]:
        """The newest report of each (kind, tenant, feature); tenant_id set: only that tenant's."""
        ...


_REPORT_COLUMNS = ("computed_at", "kind", "tenant_id", "model_version_id", "feature", "test", "statistic", "p_value",
                   "psi", "serving_rows", "drifted")


class PostgresDriftRepository:
    def serving_features(self, session: Any, table: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        # `table` comes from the composition layer's list of kinds, never from a request.
        return session.fetch_all(
            f"SELECT tenant_id::text AS tenant_id, features FROM {table}"
            " WHERE predicted_at >= :start AND predicted_at < :end AND variant <> 'shadow'"
            " ORDER BY predicted_at DESC LIMIT :limit", start=start, end=end, limit=SERVING_ROWS_LIMIT)

    def store_reports(self, session: Any, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            session.execute(
                "INSERT INTO drift_reports (computed_at, kind, tenant_id, model_version_id, feature, test, statistic,"
                " p_value, psi, serving_rows, drifted) VALUES (:computed_at, :kind, CAST(:tenant_id AS uuid),"
                " CAST(:model_version_id AS uuid), :feature, :test, :statistic, :p_value, :psi, :serving_rows,"
                " :drifted)", **{k: row[k] for k in _REPORT_COLUMNS})

    def latest_reports(self, session: Any, tenant_id: str | None) -> list[dict[str, Any]]:
        return session.fetch_all(
            "SELECT DISTINCT ON (kind, tenant_id, feature) computed_at, kind, tenant_id::text AS tenant_id,"
            " model_version_id::text AS model_version_id, feature, test, statistic, p_value, psi, serving_rows, drifted"
            " FROM drift_reports WHERE (CAST(:tenant AS uuid) IS NULL OR tenant_id = CAST(:tenant AS uuid))"
            " ORDER BY kind, tenant_id, feature, computed_at DESC", tenant=tenant_id)


@dataclass
class InMemoryDriftRepository:
    logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)

    def serving_features(self, session: Any, table: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rows = [r for r in self.logs.get(table, []) if start <= r["predicted_at"] < end]
        rows.sort(key=lambda r: r["predicted_at"], reverse=True)
        return [{"tenant_id": r["tenant_id"], "features": r["features"]} for r in rows[:SERVING_ROWS_LIMIT]]

    def store_reports(self, session: Any, rows: Sequence[dict[str, Any]]) -> None:
        self.reports.extend(dict(r) for r in rows)

    def latest_reports(self, session: Any, tenant_id: str | None) -> list[dict[str, Any]]:
        latest: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        for row in self.reports:
            if tenant_id in (None, row["tenant_id"]):
                latest[(row["kind"], row["tenant_id"], row["feature"])] = row
        return sorted(latest.values(), key=lambda r: (r["kind"], str(r["tenant_id"]), r["feature"]))
