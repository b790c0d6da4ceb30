"""The demo's prediction history: a sample of the tenant's recent sync events asked for through the
real prediction path as of the moment each sync started, so the log, outcomes and live metrics
(and the dashboard drawn from them) exist on first start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.conflict.demo_replay_repository import has_predictions, sample_events
from shared.conflict.outcomes import track_conflict_outcomes
from shared.conflict.prediction import ConflictPredictionRequest, answer_conflict
from shared.conflict.services import conflict_services
from shared.context import AppContext

ASKED_BEFORE_UPLOAD = timedelta(milliseconds=1)


def replay_predictions(context: AppContext, tenant_id: str, *, days: int = 21, limit: int = 600,
                       now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    services = conflict_services(context)
    with services.transactions.transaction() as tx:
        if has_predictions(tx, tenant_id):
            return {"predictions": 0, "labelled": 0, "skipped": "the tenant has predictions"}
        events = sample_events(tx, tenant_id, now - timedelta(days=days), now, limit)
    for n, event in enumerate(events):
        request = ConflictPredictionRequest(
            domain=event["domain"], user_id=event["user_id"], entity_type=event["entity_type"],
            entity_id=event["entity_id"], fields=list(event["fields_changed"]), device_id=event["device_id"],
            client_last_sync_at=event["client_last_sync_at"])
        # Asked just before the event arrived, as a client asks before it uploads: the outcome
        # (a conflict received after the prediction) then counts the event's own.
        asked = event["received_at"] - ASKED_BEFORE_UPLOAD
        answer_conflict(services, tenant_id, request, f"demo-replay-{n}", now=asked)
    tracked = track_conflict_outcomes(context, now=now)
    return {"predictions": len(events), "labelled": tracked["labelled"]}
