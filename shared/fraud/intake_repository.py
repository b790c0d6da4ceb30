"""Where fraud-loop input is stored: sites and holidays (upserts), attendance events (idempotent on
`client_event_id`, like sync events), and labels (an investigator may change a verdict)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from shared.adapters.db import Transaction
from shared.errors import Conflict, FieldProblem, InvalidInput, NotFound
from shared.fraud.intake import AttendanceEventIn, FraudLabelIn, HolidayIn, SiteIn
from shared.platform.validation import ensure_unique

_EVENT_COLUMNS = (
    "client_event_id", "user_id", "site_id", "device_id", "event_type", "occurred_at", "latitude", "longitude",
    "gps_accuracy_m", "face_match_confidence", "biometric_verified",
)
_RECORDSET = """jsonb_to_recordset(CAST(:batch AS jsonb)) AS i(
    client_event_id text, user_id text, site_id text, device_id text, event_type text, occurred_at timestamptz,
    latitude float8, longitude float8, gps_accuracy_m float8, face_match_confidence float8, biometric_verified boolean)"""
_INSERT_EVENTS_SQL = f"""
INSERT INTO attendance_events (tenant_id, {", ".join(_EVENT_COLUMNS)})
SELECT CAST(:tenant AS uuid), {", ".join(_EVENT_COLUMNS)} FROM {_RECORDSET}
ORDER BY client_event_id  -- one lock order: batches of the same ids in other orders cannot deadlock
ON CONFLICT (tenant_id, client_event_id) DO NOTHING
"""
# After the insert: the ids stored with other content (the new ones match themselves).
_CHANGED_EVENTS_SQL = f"""
SELECT i.client_event_id, s.event_id FROM {_RECORDSET}
JOIN attendance_events s ON s.tenant_id = CAST(:tenant AS uuid) AND s.client_event_id = i.client_event_id
WHERE ({", ".join("i." + c for c in _EVENT_COLUMNS)}) IS DISTINCT FROM ({", ".join("s." + c for c in _EVENT_COLUMNS)})
"""
# The answer's event_id is a random UUID: the serial key would show one tenant the platform's volume.
_STORED_IDS_SQL = f"""
SELECT i.client_event_id, s.public_id FROM {_RECORDSET}
JOIN attendance_events s ON s.tenant_id = CAST(:tenant AS uuid) AND s.client_event_id = i.client_event_id
"""


def store_attendance_events(tx: Transaction, tenant_id: str, events: Sequence[AttendanceEventIn]) -> list[dict[str, Any]]:
    """Store what is new; answer [{client_event_id, event_id}] in input order, the same for a replay.
    A known id with other content raises Conflict, and the caller's transaction stores nothing."""
    batch = json.dumps([event.model_dump(mode="json") for event in events])
    stored = tx.execute(_INSERT_EVENTS_SQL, tenant=tenant_id, batch=batch)
    if stored < len(events):
        changed = [row["client_event_id"] for row in tx.fetch_all(_CHANGED_EVENTS_SQL, tenant=tenant_id, batch=batch)]
        if changed:
            raise Conflict(f"{len(changed)} client_event_id(s) already stored with other content: {', '.join(changed[:5])}",
                           [FieldProblem(cid, "already stored with other content") for cid in changed])
    ids = {row["client_event_id"]: str(row["public_id"])
           for row in tx.fetch_all(_STORED_IDS_SQL, tenant=tenant_id, batch=batch)}
    return [{"client_event_id": e.client_event_id, "event_id": ids[e.client_event_id]} for e in events]


def upsert_sites(tx: Transaction, tenant_id: str, sites: Sequence[SiteIn]) -> int:
    return tx.execute(
        "INSERT INTO sites (tenant_id, site_id, latitude, longitude, radius_m, timezone)"
        " SELECT CAST(:tenant AS uuid), site_id, latitude, longitude, radius_m, timezone"
        " FROM jsonb_to_recordset(CAST(:batch AS jsonb)) AS s(site_id text, latitude float8, longitude float8,"
        " radius_m float8, timezone text)"
        " ORDER BY site_id"  # one lock order, as for events
        " ON CONFLICT (tenant_id, site_id) DO UPDATE SET latitude = EXCLUDED.latitude,"
        " longitude = EXCLUDED.longitude, radius_m = EXCLUDED.radius_m, timezone = EXCLUDED.timezone, updated_at = now()",
        tenant=tenant_id, batch=json.dumps([site.model_dump(mode="json") for site in sites]),
    )


def upsert_holidays(tx: Transaction, tenant_id: str, holidays: Sequence[HolidayIn]) -> int:
    return tx.execute(
        "INSERT INTO holidays (tenant_id, day, name)"
        " SELECT CAST(:tenant AS uuid), day, name FROM jsonb_to_recordset(CAST(:batch AS jsonb)) AS h(day date, name text)"
        " ORDER BY day"
        " ON CONFLICT (tenant_id, day) DO UPDATE SET name = EXCLUDED.name",
        tenant=tenant_id, batch=json.dumps([{"day": h.date.isoformat(), "name": h.name} for h in holidays]),
    )


def unknown_event_ids(tx: Transaction, tenant_id: str, client_event_ids: Sequence[str]) -> set[str]:
    """The ids that name no stored attendance event of this tenant."""
    if not client_event_ids:
        return set()
    return {row["client_event_id"] for row in tx.fetch_all(
        "SELECT l.client_event_id FROM unnest(CAST(:ids AS text[])) AS l(client_event_id)"
        " WHERE NOT EXISTS (SELECT 1 FROM attendance_events e WHERE e.tenant_id = CAST(:tenant AS uuid)"
        " AND e.client_event_id = l.client_event_id)",
        tenant=tenant_id, ids=list(client_event_ids),
    )}


def store_labels(tx: Transaction, tenant_id: str, labels: Sequence[FraudLabelIn]) -> int:
    """Labels name this tenant's stored events, each once; any unknown id is NotFound and nothing is stored."""
    ids = [label.client_event_id for label in labels]
    try:
        ensure_unique(ids, "client_event_id")
    except ValueError as exc:  # callers validate batches; a repeat here would let one verdict win silently
        raise InvalidInput(str(exc), [FieldProblem("client_event_id", str(exc))]) from None
    unknown = sorted(unknown_event_ids(tx, tenant_id, ids))
    if unknown:
        raise NotFound(f"no attendance event {', '.join(unknown[:5])}",
                       [FieldProblem("client_event_id", f"unknown: {', '.join(unknown[:5])}")])
    return tx.execute(
        "INSERT INTO fraud_labels (tenant_id, client_event_id, is_fraud)"
        " SELECT CAST(:tenant AS uuid), client_event_id, is_fraud"
        " FROM jsonb_to_recordset(CAST(:batch AS jsonb)) AS l(client_event_id text, is_fraud boolean)"
        # Rows locked in one order: two batches of the same ids in other orders cannot deadlock.
        " ORDER BY client_event_id"
        " ON CONFLICT (tenant_id, client_event_id) DO UPDATE SET is_fraud = EXCLUDED.is_fraud, labelled_at = now()",
        tenant=tenant_id, batch=json.dumps([label.model_dump() for label in labels]),
    )
