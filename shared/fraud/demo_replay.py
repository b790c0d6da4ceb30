"""The demo's fraud scores: a sample of the tenant's stored attendance events of the last weeks
(labelled ones first) scored through the real path as of when each happened, then the outcome job,
so the dashboard's confusion matrix, false-positive rate and high scores exist on first start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.context import AppContext
from shared.fraud.demo_replay_repository import has_scores, sample_events
from shared.fraud.learning import track_fraud_outcomes
from shared.fraud.prediction import StoredEventRef, answer_fraud
from shared.fraud.services import fraud_services


def replay_scores(context: AppContext, tenant_id: str, *, days: int = 45, limit: int = 300,
                  now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    services = fraud_services(context)
    with services.transactions.transaction() as tx:
        if has_scores(tx, tenant_id):
            return {"scored": 0, "labelled": 0, "skipped": "the tenant has scores"}
        events = sample_events(tx, tenant_id, now - timedelta(days=days), now, limit)
    for n, event in enumerate(events):
        answer_fraud(services, tenant_id, StoredEventRef(client_event_id=event["client_event_id"]),
                     f"demo-replay-{n}", now=event["occurred_at"] + timedelta(seconds=1))
    tracked = track_fraud_outcomes(context, now=now)
    return {"scored": len(events), "labelled": tracked["labelled"]}
