"""Loading a simulated fraud history into the database (the run command's demo, and the tests)."""

from __future__ import annotations

from typing import Any

from shared.context import AppContext
from shared.fraud.intake import AttendanceEventIn, FraudLabelIn, HolidayIn, SiteIn
from shared.fraud.intake_repository import store_attendance_events, store_labels, upsert_holidays, upsert_sites

CHUNK = 1000


def seed_fraud_history(context: AppContext, tenant_ids: dict[str, str], history: dict[str, dict[str, Any]]) -> int:
    """Sites, holidays, events and labels of each tenant in `history`, through the intake path."""
    stored = 0
    for slug, tenant in history.items():
        tenant_id = tenant_ids[slug]
        events = [AttendanceEventIn.model_validate(e) for e in tenant["events"]]
        with context.database.transaction() as tx:
            upsert_sites(tx, tenant_id, [SiteIn.model_validate(s) for s in tenant["sites"]])
            upsert_holidays(tx, tenant_id, [HolidayIn.model_validate(h) for h in tenant["holidays"]])
            for start in range(0, len(events), CHUNK):
                store_attendance_events(tx, tenant_id, events[start:start + CHUNK])
            labels = [FraudLabelIn.model_validate(label) for label in tenant["labels"]]
            for start in range(0, len(labels), CHUNK):
                store_labels(tx, tenant_id, labels[start:start + CHUNK])
        stored += len(events)
    return stored
