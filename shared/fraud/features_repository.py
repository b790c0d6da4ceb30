"""Reading what the fraud features need: events as columns, sites, holidays; and the training rows
under the label policy. The features themselves are computed in shared/fraud/features.py."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from shared.adapters.db import Database, Transaction
from shared.fraud.features import HISTORY_DAYS, EventColumns, Site, compute_features
from shared.platform.kinds import TrainingSet

LABEL_LOOKBACK = timedelta(days=30)  # unlabelled this long after it happened: legitimate
_EVENT_COLUMNS = (
    "e.tenant_id::text AS tenant_id, e.client_event_id, e.user_id, e.site_id, e.device_id, e.event_type,"
    " e.latitude, e.longitude, e.gps_accuracy_m, e.face_match_confidence, e.biometric_verified"
)
_EVENT_SELECT = f"SELECT {_EVENT_COLUMNS}, e.occurred_at FROM attendance_events e"


def load_sites(tx: Transaction, tenant_id: str | None) -> dict[str, Site]:
    rows = tx.fetch_all(
        "SELECT tenant_id::text AS tenant_id, site_id, latitude, longitude, radius_m, timezone FROM sites"
        " WHERE CAST(:tenant AS uuid) IS NULL OR tenant_id = CAST(:tenant AS uuid)", tenant=tenant_id)
    return {f"{r['tenant_id']}|{r['site_id']}": Site(r["latitude"], r["longitude"], r["radius_m"], r["timezone"])
            for r in rows}


def load_holidays(tx: Transaction, tenant_id: str | None) -> list[tuple[str, date]]:
    rows = tx.fetch_all("SELECT tenant_id::text AS tenant_id, day FROM holidays"
                        " WHERE CAST(:tenant AS uuid) IS NULL OR tenant_id = CAST(:tenant AS uuid)", tenant=tenant_id)
    return [(r["tenant_id"], r["day"]) for r in rows]


def load_events(tx: Transaction, tenant_id: str | None, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Every event of the tenant (or all tenants) that occurred in [start, end), in time order."""
    return tx.fetch_all(
        _EVENT_SELECT + " WHERE e.occurred_at >= :start AND e.occurred_at < :end"
        " AND (CAST(:tenant AS uuid) IS NULL OR e.tenant_id = CAST(:tenant AS uuid))"
        " ORDER BY e.occurred_at, e.event_id", start=start, end=end, tenant=tenant_id)


def load_stored_event(tx: Transaction, tenant_id: str, client_event_id: str) -> dict[str, Any] | None:
    return tx.fetch_one(_EVENT_SELECT + " WHERE e.tenant_id = CAST(:tenant AS uuid) AND e.client_event_id = :id",
                        tenant=tenant_id, id=client_event_id)


def load_labels(tx: Transaction, tenant_id: str | None) -> dict[tuple[str, str], bool]:
    rows = tx.fetch_all("SELECT tenant_id::text AS tenant_id, client_event_id, is_fraud FROM fraud_labels"
                        " WHERE CAST(:tenant AS uuid) IS NULL OR tenant_id = CAST(:tenant AS uuid)", tenant=tenant_id)
    return {(r["tenant_id"], r["client_event_id"]): r["is_fraud"] for r in rows}


class FraudContext(Protocol):
    """What live prediction reads, behind one transaction."""

    def stored_event(self, session: Any, tenant_id: str, client_event_id: str) -> dict[str, Any] | None: ...

    def live_inputs(self, session: Any, tenant_id: str, event: dict[str, Any]
                    ) -> tuple[list[dict[str, Any]], dict[str, Site], list[tuple[str, date]]]: ...


# Everything one live score reads, in one round trip: the history the features look at (as
# compact JSON arrays: cheaper to read than typed rows), the sites of those events and of the
# target, and the tenant's holidays around the target's date.
_LIVE_INPUTS_SQL = """
WITH history AS (
    SELECT * FROM attendance_events WHERE event_id IN (
        SELECT event_id FROM attendance_events WHERE tenant_id = CAST(:tenant AS uuid) AND user_id = :user
          AND occurred_at >= CAST(:before AS timestamptz) - make_interval(days => :days) AND occurred_at < :before
        UNION SELECT event_id FROM attendance_events WHERE tenant_id = CAST(:tenant AS uuid) AND device_id = :device
          AND occurred_at >= CAST(:before AS timestamptz) - INTERVAL '12 hours' AND occurred_at < :before
        UNION SELECT event_id FROM attendance_events WHERE tenant_id = CAST(:tenant AS uuid) AND site_id = :site
          AND occurred_at >= CAST(:before AS timestamptz) - INTERVAL '10 minutes' AND occurred_at < :before)
)
SELECT
    (SELECT COALESCE(json_agg(json_build_array(user_id, site_id, device_id, event_type,
            CAST(floor(extract(epoch FROM occurred_at)) AS bigint), latitude, longitude, gps_accuracy_m,
            face_match_confidence, biometric_verified)), '[]'::json) FROM history) AS history,
    (SELECT COALESCE(json_agg(json_build_array(site_id, latitude, longitude, radius_m, timezone)), '[]'::json)
       FROM sites WHERE tenant_id = CAST(:tenant AS uuid)
        AND (site_id = :site OR site_id IN (SELECT site_id FROM history))) AS sites,
    (SELECT COALESCE(json_agg(day), '[]'::json) FROM holidays WHERE tenant_id = CAST(:tenant AS uuid)
        AND day BETWEEN CAST(:before AS date) - 2 AND CAST(:before AS date) + 2) AS holidays
"""
_HISTORY_FIELDS = ("user_id", "site_id", "device_id", "event_type", "t", "latitude", "longitude", "gps_accuracy_m",
                   "face_match_confidence", "biometric_verified")


class PostgresFraudContext:
    def stored_event(self, session: Transaction, tenant_id: str, client_event_id: str) -> dict[str, Any] | None:
        return load_stored_event(session, tenant_id, client_event_id)

    def live_inputs(self, session: Transaction, tenant_id: str, event: dict[str, Any]
                    ) -> tuple[list[dict[str, Any]], dict[str, Site], list[tuple[str, date]]]:
        row = session.fetch_one(_LIVE_INPUTS_SQL, tenant=tenant_id, user=event["user_id"], device=event["device_id"],
                                site=event["site_id"], before=event["occurred_at"], days=HISTORY_DAYS)
        assert row is not None
        decoded = {name: json.loads(row[name]) if isinstance(row[name], str) else row[name]
                   for name in ("history", "sites", "holidays")}
        history = [{"tenant_id": tenant_id, **dict(zip(_HISTORY_FIELDS, values, strict=True))}
                   for values in decoded["history"]]
        sites = {f"{tenant_id}|{s[0]}": Site(s[1], s[2], s[3], s[4]) for s in decoded["sites"]}
        holidays = [(tenant_id, date.fromisoformat(day)) for day in decoded["holidays"]]
        return history, sites, holidays


def labelled_training_set(events: list[dict[str, Any]], labels: dict[tuple[str, str], bool], sites: dict[str, Site],
                          holidays: list[tuple[str, date]], start: datetime, end: datetime) -> TrainingSet:
    """Rows of [start, end) under the label policy: a label if there is one; else legitimate once
    30 days old; else left out. Features from all loaded events strictly before each row."""
    history = EventColumns.from_rows(events)
    keep = [i for i, e in enumerate(events)
            if e["occurred_at"] >= start
            and ((e["tenant_id"], e["client_event_id"]) in labels or e["occurred_at"] <= end - LABEL_LOOKBACK)]
    targets = EventColumns.from_rows([events[i] for i in keep])
    features = compute_features(history, targets, sites, holidays)
    design = np.column_stack([features[name] for name in features]) if keep else np.zeros((0, len(features)))
    y = np.array([labels.get((events[i]["tenant_id"], events[i]["client_event_id"]), False) for i in keep], dtype=bool)
    return TrainingSet(design, y, [events[i]["occurred_at"] for i in keep], start, end)


class PostgresFraudTrainingSource:
    """Training rows of one tenant (or all tenants, for the pooled global model)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def training_set(self, tenant_id: str | None, start: datetime, end: datetime) -> TrainingSet:
        with self._database.transaction() as tx:
            events = load_events(tx, tenant_id, start - timedelta(days=HISTORY_DAYS), end)
            labels = load_labels(tx, tenant_id)
            sites, holidays = load_sites(tx, tenant_id), load_holidays(tx, tenant_id)
        return labelled_training_set(events, labels, sites, holidays, start, end)
