"""Incidents, their alerts and silences: PostgreSQL and the in-memory fake. The grouping rules
live in alerting.py; this holds the rows."""

from __future__ import annotations

import fnmatch
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class AlertIn:
    source: str
    metric: str
    alert_type: str  # anomaly | missing_data | low_uptime | drift
    score: float
    at: datetime
    reasons: tuple[str, ...] = ()
    value: float | None = None
    tenant_id: str | None = None

    @property
    def detector(self) -> str:
        """The detector that scored an anomaly highest (the scan lists reasons strongest first)."""
        return self.reasons[0] if self.alert_type == "anomaly" and self.reasons else ""

    @property
    def fingerprint(self) -> str:
        """Deduplication: one alert per series and detector (and type) while its incident is open."""
        base = f"{self.alert_type}:{self.source}:{self.metric}"
        return f"{base}:{self.detector}" if self.detector else base


@dataclass(frozen=True)
class Silence:
    source: str  # LIKE pattern
    metric: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    silence_id: str = ""

    def matches(self, source: str, metric: str, at: datetime) -> bool:
        def like(pattern: str, text: str) -> bool:
            return fnmatch.fnmatchcase(text, pattern.replace("%", "*").replace("_", "?"))

        return self.starts_at <= at < self.ends_at and like(self.source, source) and like(self.metric, metric)


class AlertsRepository(Protocol):
    def open_incident(self, session: Any, group_key: str, since: datetime,
                      tenant_id: str | None = None) -> dict[str, Any] | None:
        """The group's (and tenant's) incident not resolved and alerted on at or after `since`."""
        ...

    def incident_holding(self, session: Any, fingerprint: str, tenant_id: str | None) -> str | None:
        """The unresolved incident that already has an alert with this fingerprint, if any."""
        ...

    def create_incident(self, session: Any, source: str, tenant_id: str | None, at: datetime,
                        group_key: str | None = None) -> str: ...

    def record_alert(self, session: Any, incident_id: str, alert: AlertIn, silenced: bool) -> tuple[str, bool]:
        """Insert, or (same fingerprint in the incident) count another occurrence. Returns
        (alert_id, new)."""
        ...

    def unpublished(self, session: Any) -> list[dict[str, Any]]: ...

    def mark_published(self, session: Any, alert_ids: Sequence[str]) -> None: ...

    def incidents(self, session: Any, *, status: str | None, tenant_id: str | None, limit: int) -> list[dict[str, Any]]:
        """Newest first, each with its alerts; tenant_id set: only that tenant's incidents."""
        ...

    def acknowledge(self, session: Any, incident_id: str, by: str, at: datetime,
                    tenant_id: str | None) -> dict[str, Any] | None: ...

    def resolve_quiet(self, session: Any, quiet_since: datetime, at: datetime) -> int: ...

    def lock_silences(self, session: Any, created_by: str) -> None:
        """Until the transaction ends, one request of `created_by` at a time adds a silence (so a
        retry sent while its first try still runs finds the stored one)."""

    def add_silence(self, session: Any, silence: Silence) -> Silence: ...

    def silences(self, session: Any, at: datetime) -> list[Silence]:
        """Silences not yet ended at `at`."""
        ...


_INCIDENT_COLUMNS = ("incident_id::text AS incident_id, source, coalesce(group_key, source) AS group_key,"
                     " tenant_id::text AS tenant_id, status, opened_at,"
                     " last_alert_at, alerts, max_score, acknowledged_by, acknowledged_at, resolved_at")
_ALERT_COLUMNS = ("alert_id::text AS alert_id, incident_id::text AS incident_id, source, metric, alert_type, score,"
                  " reasons, value, first_at, last_at, occurrences, silenced, tenant_id::text AS tenant_id")
_RECORD_ALERT = """
INSERT INTO monitoring_alerts (fingerprint, incident_id, tenant_id, source, metric, alert_type, score, reasons,
                               value, first_at, last_at, silenced)
VALUES (:fingerprint, CAST(:incident AS uuid), CAST(:tenant AS uuid), :source, :metric, :type, :score,
        CAST(:reasons AS text[]), :value, :at, :at, :silenced)
ON CONFLICT (incident_id, fingerprint) DO UPDATE SET occurrences = monitoring_alerts.occurrences + 1,
    last_at = GREATEST(monitoring_alerts.last_at, EXCLUDED.last_at),
    score = GREATEST(monitoring_alerts.score, EXCLUDED.score), value = EXCLUDED.value
RETURNING alert_id::text AS alert_id, occurrences
"""
_TOUCH_INCIDENT = """
UPDATE monitoring_incidents SET last_alert_at = GREATEST(last_alert_at, :at), max_score = GREATEST(max_score, :score),
    alerts = alerts + :new
WHERE incident_id = CAST(:incident AS uuid)
"""


class PostgresAlertsRepository:
    def open_incident(self, session: Any, group_key: str, since: datetime,
                      tenant_id: str | None = None) -> dict[str, Any] | None:
        return session.fetch_one(
            f"SELECT {_INCIDENT_COLUMNS} FROM monitoring_incidents WHERE coalesce(group_key, source) = :group"
            " AND tenant_id IS NOT DISTINCT FROM CAST(:tenant AS uuid) AND status <> 'resolved'"
            " AND last_alert_at >= :since ORDER BY last_alert_at DESC LIMIT 1", group=group_key, since=since,
            tenant=tenant_id)

    def incident_holding(self, session: Any, fingerprint: str, tenant_id: str | None) -> str | None:
        found = session.fetch_value(
            "SELECT i.incident_id::text FROM monitoring_alerts a JOIN monitoring_incidents i USING (incident_id)"
            " WHERE a.fingerprint = :fingerprint AND i.status <> 'resolved'"
            " AND i.tenant_id IS NOT DISTINCT FROM CAST(:tenant AS uuid)"
            " ORDER BY i.last_alert_at DESC LIMIT 1", fingerprint=fingerprint, tenant=tenant_id)
        return None if found is None else str(found)

    def create_incident(self, session: Any, source: str, tenant_id: str | None, at: datetime,
                        group_key: str | None = None) -> str:
        return str(session.fetch_value(
            "INSERT INTO monitoring_incidents (source, group_key, tenant_id, opened_at, last_alert_at)"
            " VALUES (:source, :group, CAST(:tenant AS uuid), :at, :at) RETURNING incident_id", source=source,
            group=group_key or source, tenant=tenant_id, at=at))

    def record_alert(self, session: Any, incident_id: str, alert: AlertIn, silenced: bool) -> tuple[str, bool]:
        row = session.fetch_one(
            _RECORD_ALERT, fingerprint=alert.fingerprint, incident=incident_id, tenant=alert.tenant_id,
            source=alert.source, metric=alert.metric, type=alert.alert_type, score=alert.score,
            reasons=list(alert.reasons), value=alert.value, at=alert.at, silenced=silenced)
        new = row["occurrences"] == 1
        session.execute(_TOUCH_INCIDENT, at=alert.at, score=alert.score, new=1 if new else 0, incident=incident_id)
        return row["alert_id"], new

    def unpublished(self, session: Any) -> list[dict[str, Any]]:
        return session.fetch_all(f"SELECT {_ALERT_COLUMNS} FROM monitoring_alerts"
                                 " WHERE NOT published AND NOT silenced ORDER BY first_at")

    def mark_published(self, session: Any, alert_ids: Sequence[str]) -> None:
        if alert_ids:
            session.execute("UPDATE monitoring_alerts SET published = true WHERE alert_id = ANY(CAST(:ids AS uuid[]))",
                            ids=list(alert_ids))

    def incidents(self, session: Any, *, status: str | None, tenant_id: str | None, limit: int) -> list[dict[str, Any]]:
        incidents = session.fetch_all(
            f"SELECT {_INCIDENT_COLUMNS} FROM monitoring_incidents"
            " WHERE (CAST(:status AS text) IS NULL OR status = :status)"
            " AND (CAST(:tenant AS uuid) IS NULL OR tenant_id = CAST(:tenant AS uuid))"
            " ORDER BY last_alert_at DESC LIMIT :limit", status=status, tenant=tenant_id, limit=limit)
        if incidents:
            alerts = session.fetch_all(
                f"SELECT {_ALERT_COLUMNS} FROM monitoring_alerts WHERE incident_id = ANY(CAST(:ids AS uuid[]))"
                " ORDER BY first_at", ids=[i["incident_id"] for i in incidents])
            for incident in incidents:
                incident["alert_list"] = [a for a in alerts if a["incident_id"] == incident["incident_id"]]
        return incidents

    def acknowledge(self, session: Any, incident_id: str, by: str, at: datetime,
                    tenant_id: str | None) -> dict[str, Any] | None:
        # Acknowledging twice keeps the first acknowledgement (who and when): a retry changes nothing.
        return session.fetch_one(
            "UPDATE monitoring_incidents SET status = 'acknowledged',"
            " acknowledged_by = coalesce(acknowledged_by, :by), acknowledged_at = coalesce(acknowledged_at, :at)"
            " WHERE incident_id = CAST(:id AS uuid) AND status <> 'resolved'"
            " AND (CAST(:tenant AS uuid) IS NULL OR tenant_id = CAST(:tenant AS uuid))"
            f" RETURNING {_INCIDENT_COLUMNS}", id=incident_id, by=by, at=at, tenant=tenant_id)

    def resolve_quiet(self, session: Any, quiet_since: datetime, at: datetime) -> int:
        return int(session.execute(
            "UPDATE monitoring_incidents SET status = 'resolved', resolved_at = :at"
            " WHERE status <> 'resolved' AND last_alert_at < :quiet", quiet=quiet_since, at=at))

    def lock_silences(self, session: Any, created_by: str) -> None:
        session.advisory_lock(f"monitoring/silences/{created_by}")

    def add_silence(self, session: Any, silence: Silence) -> Silence:
        silence_id = session.fetch_value(
            "INSERT INTO monitoring_silences (source, metric, starts_at, ends_at, reason, created_by)"
            " VALUES (:source, :metric, :starts, :ends, :reason, :by) RETURNING silence_id::text",
            source=silence.source, metric=silence.metric, starts=silence.starts_at, ends=silence.ends_at,
            reason=silence.reason, by=silence.created_by)
        return replace(silence, silence_id=str(silence_id))

    def silences(self, session: Any, at: datetime) -> list[Silence]:
        rows = session.fetch_all(
            "SELECT silence_id::text AS silence_id, source, metric, starts_at, ends_at, reason, created_by"
            " FROM monitoring_silences WHERE ends_at > :at ORDER BY starts_at", at=at)
        return [Silence(r["source"], r["metric"], r["starts_at"], r["ends_at"], r["reason"], r["created_by"],
                        r["silence_id"]) for r in rows]


@dataclass
class InMemoryAlertsRepository:
    incident_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    alert_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    silence_rows: list[Silence] = field(default_factory=list)

    def open_incident(self, session: Any, group_key: str, since: datetime,
                      tenant_id: str | None = None) -> dict[str, Any] | None:
        found = [i for i in self.incident_rows.values()
                 if (i.get("group_key") or i["source"]) == group_key and i["tenant_id"] == tenant_id and i["status"] != "resolved"
                 and i["last_alert_at"] >= since]
        return dict(max(found, key=lambda i: i["last_alert_at"])) if found else None

    def incident_holding(self, session: Any, fingerprint: str, tenant_id: str | None) -> str | None:
        found = [self.incident_rows[a["incident_id"]] for a in self.alert_rows.values()
                 if a["fingerprint"] == fingerprint]
        found = [i for i in found if i["status"] != "resolved" and i["tenant_id"] == tenant_id]
        return str(max(found, key=lambda i: i["last_alert_at"])["incident_id"]) if found else None

    def create_incident(self, session: Any, source: str, tenant_id: str | None, at: datetime,
                        group_key: str | None = None) -> str:
        incident_id = str(uuid.uuid4())
        self.incident_rows[incident_id] = {
            "incident_id": incident_id, "source": source, "group_key": group_key or source, "tenant_id": tenant_id,
            "status": "open", "opened_at": at,
            "last_alert_at": at, "alerts": 0, "max_score": 0.0, "acknowledged_by": None, "acknowledged_at": None,
            "resolved_at": None}
        return incident_id

    def record_alert(self, session: Any, incident_id: str, alert: AlertIn, silenced: bool) -> tuple[str, bool]:
        incident = self.incident_rows[incident_id]
        existing = next((a for a in self.alert_rows.values()
                         if a["incident_id"] == incident_id and a["fingerprint"] == alert.fingerprint), None)
        if existing is not None:
            existing["occurrences"] += 1
            existing["last_at"] = max(existing["last_at"], alert.at)
            existing["score"] = max(existing["score"], alert.score)
            new, alert_id = False, existing["alert_id"]
        else:
            alert_id = str(uuid.uuid4())
            self.alert_rows[alert_id] = {
                "alert_id": alert_id, "incident_id": incident_id, "fingerprint": alert.fingerprint,
                "source": alert.source, "metric": alert.metric, "alert_type": alert.alert_type, "score": alert.score,
                "reasons": list(alert.reasons), "value": alert.value, "first_at": alert.at, "last_at": alert.at,
                "occurrences": 1, "silenced": silenced, "published": False, "tenant_id": alert.tenant_id}
            new = True
        incident["last_alert_at"] = max(incident["last_alert_at"], alert.at)
        incident["max_score"] = max(incident["max_score"], alert.score)
        incident["alerts"] += 1 if new else 0
        return alert_id, new

    def unpublished(self, session: Any) -> list[dict[str, Any]]:
        return [dict(a) for a in self.alert_rows.values() if not a["published"] and not a["silenced"]]

    def mark_published(self, session: Any, alert_ids: Sequence[str]) -> None:
        for alert_id in alert_ids:
            self.alert_rows[alert_id]["published"] = True

    def incidents(self, session: Any, *, status: str | None, tenant_id: str | None, limit: int) -> list[dict[str, Any]]:
        rows = [dict(i) for i in self.incident_rows.values()
                if status in (None, i["status"]) and tenant_id in (None, i["tenant_id"])]
        rows.sort(key=lambda i: i["last_alert_at"], reverse=True)
        for row in rows:
            row["alert_list"] = [dict(a) for a in self.alert_rows.values() if a["incident_id"] == row["incident_id"]]
        return rows[:limit]

    def acknowledge(self, session: Any, incident_id: str, by: str, at: datetime,
                    tenant_id: str | None) -> dict[str, Any] | None:
        incident = self.incident_rows.get(incident_id)
        if incident is None or incident["status"] == "resolved" or tenant_id not in (None, incident["tenant_id"]):
            return None
        if incident.get("acknowledged_at") is None:
            incident.update(acknowledged_by=by, acknowledged_at=at)
        incident["status"] = "acknowledged"
        return dict(incident)

    def resolve_quiet(self, session: Any, quiet_since: datetime, at: datetime) -> int:
        quiet = [i for i in self.incident_rows.values() if i["status"] != "resolved" and i["last_alert_at"] < quiet_since]
        for incident in quiet:
            incident.update(status="resolved", resolved_at=at)
        return len(quiet)

    def lock_silences(self, session: Any, created_by: str) -> None:
        pass  # the fakes run one request at a time

    def add_silence(self, session: Any, silence: Silence) -> Silence:
        stored = replace(silence, silence_id=str(uuid.uuid4()))
        self.silence_rows.append(stored)
        return stored

    def silences(self, session: Any, at: datetime) -> list[Silence]:
        return [s for s in self.silence_rows if s.ends_at > at]
