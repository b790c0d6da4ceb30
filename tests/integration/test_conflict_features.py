"""Features as of a time: hand-checked values, no peeking, and one path for all three uses."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from shared.conflict.events import SyncEvent
from shared.conflict.events_repository import store_sync_events
from shared.conflict.features_repository import (
    FeatureRequest,
    feature_vector,
    features_for_requests,
    features_for_stored_events,
)
from shared.conflict.prediction import ConflictPredictionRequest, predict_conflict
from shared.conflict.scoring import score_conflict_csv
from shared.context import AppContext

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def event(n: int, user: str, minutes: float, fields: list[str], entity: str = "r1", conflicted: bool = False) -> SyncEvent:
    return SyncEvent(
        client_event_id=f"e{n}", user_id=user, device_id=f"{user}-phone", domain="voice", entity_type="recording",
        entity_id=entity, fields_changed=fields, received_at=T0 + timedelta(minutes=minutes), conflicted=conflicted,
        conflict_fields=fields[:1] if conflicted else [],
    )


def store(context: AppContext, tenant_id: str, events: list[SyncEvent]) -> None:
    with context.database.transaction() as tx:
        store_sync_events(tx, tenant_id, events, datetime.now(UTC))


def features_at(context: AppContext, tenant_id: str, user: str, as_of: datetime, fields: list[str] | None,
                entity: str = "r1") -> dict[str, float]:
    request = FeatureRequest("q", tenant_id, user, "voice", "recording", entity, tuple(fields) if fields else None, as_of)
    with context.database.transaction() as tx:
        return feature_vector(features_for_requests(tx, [request])[0])


@pytest.fixture
def tenant(context: AppContext) -> str:
    return context.tenants.create_tenant("acme", "Acme").tenant_id


def test_hand_computed_features(context: AppContext, tenant: str) -> None:
    store(context, tenant, [
        event(1, "alice", 0, ["title", "notes"], conflicted=True),
        event(2, "bob", 60, ["notes"]),
        event(3, "carol", 90, ["tags"]),
        event(4, "bob", 100, ["title"], entity="r2"),
        event(5, "dave", -60 * 30, ["notes"]),  # 30 h before: outside the 24 h editor window
    ])
    as_of = T0 + timedelta(minutes=120)
    f = features_at(context, tenant, "alice", as_of, ["notes", "duration"])
    assert f["concurrent_editors"] == 2.0                   # bob, carol (dave too old, alice is me)
    assert f["hours_since_last_sync"] == pytest.approx(2.0)  # alice synced at T0
    assert f["user_conflict_rate"] == pytest.approx((1 + 1) / (1 + 10))
    assert f["entity_edit_frequency"] == pytest.approx(4 / 7)  # e1, e2, e3, e5 on r1 within 7 days
    assert f["field_overlap_score"] == pytest.approx(0.5)    # notes changed by bob since my sync; duration not
    usual = features_at(context, tenant, "alice", as_of, None)
    assert usual["field_overlap_score"] == pytest.approx(0.5)  # my usual fields: title, notes -> notes overlaps
    newcomer = features_at(context, tenant, "zoe", as_of, ["notes"])
    assert newcomer["user_conflict_rate"] == pytest.approx(0.1)
    assert newcomer["hours_since_last_sync"] == 720.0


def test_features_never_see_the_future(context: AppContext, tenant: str) -> None:
    store(context, tenant, [event(1, "alice", 0, ["notes"]), event(2, "bob", 30, ["notes"])])
    as_of = T0 + timedelta(minutes=60)
    before = features_at(context, tenant, "alice", as_of, ["notes"])
    # Events at exactly as_of and after it, by others and by alice, conflicting or not.
    store(context, tenant, [
        event(3, "carol", 60, ["notes"], conflicted=True),
        event(4, "alice", 61, ["notes"], conflicted=True),
        event(5, "dave", 600, ["notes", "title"]),
    ])
    assert features_at(context, tenant, "alice", as_of, ["notes"]) == before


def test_training_batch_and_live_features_agree(context: AppContext, tenant: str) -> None:
    history = [
        event(i, user, minutes, fields, entity=entity, conflicted=(i % 4 == 0))
        for i, (user, minutes, fields, entity) in enumerate([
            ("alice", 0, ["notes"], "r1"), ("bob", 20, ["notes", "title"], "r1"), ("carol", 35, ["tags"], "r2"),
            ("alice", 50, ["title"], "r2"), ("bob", 70, ["notes"], "r1"), ("carol", 95, ["notes"], "r1"),
            ("alice", 130, ["notes", "tags"], "r1"), ("dave", 140, ["title"], "r1"),
        ])
    ]
    store(context, tenant, history)
    with context.database.transaction() as tx:
        training_rows = features_for_stored_events(tx, T0 - timedelta(days=1), T0 + timedelta(days=1), tenant)
        ids = {row["event_id"]: row["client_event_id"] for row in tx.fetch_all(
            "SELECT event_id::text, client_event_id FROM sync_events")}
    by_client_id = {e.client_event_id: e for e in history}
    assert len(training_rows) == len(history)

    batch_input = io.StringIO()
    writer = csv.writer(batch_input)
    writer.writerow(["user_id", "domain", "entity_type", "entity_id", "fields", "as_of"])
    for row in training_rows:
        e = by_client_id[ids[row["request_id"]]]
        writer.writerow([e.user_id, e.domain, e.entity_type, e.entity_id, ";".join(e.fields_changed), row["as_of"].isoformat()])
    batch_output = io.StringIO()
    score_conflict_csv(context, tenant, io.StringIO(batch_input.getvalue()), batch_output)
    batch_rows = list(csv.DictReader(io.StringIO(batch_output.getvalue())))

    for training_row, batch_row in zip(training_rows, batch_rows, strict=True):
        e = by_client_id[ids[training_row["request_id"]]]
        live = predict_conflict(
            context, tenant,
            ConflictPredictionRequest(domain=e.domain, user_id=e.user_id, entity_type=e.entity_type,
                                      entity_id=e.entity_id, fields=e.fields_changed),
            request_id=f"live-{e.client_event_id}", now=training_row["as_of"],
        )["features"]
        expected = feature_vector(training_row)
        assert live == pytest.approx(expected, abs=1e-12), e.client_event_id
        assert {k: float(batch_row[k]) for k in expected} == pytest.approx(expected, abs=1e-9), e.client_event_id


