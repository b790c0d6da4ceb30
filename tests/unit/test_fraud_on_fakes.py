"""The fraud loop's use cases on in-memory fakes: a score before any model (the rules), the stored
event path, the tenant's own operating point, outcomes under the label policy, and a retrained
model answering with its own reasons; tenants never see each other's events or predictions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.errors import NotFound
from shared.fraud.demo_data import FraudDemoConfig, generate_fraud_history
from shared.fraud.features import Site
from shared.fraud.intake import AttendanceEventIn
from shared.fraud.kind import FRAUD
from shared.fraud.memory import FraudMemory
from shared.fraud.prediction import StoredEventRef, answer_fraud, read_fraud_prediction
from shared.fraud.services import FraudServices, in_memory_fraud_services
from shared.platform.outcomes import track_outcomes
from shared.platform.retraining import retrain

T1, T2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)
SITE = Site(52.52, 13.40, 150.0, "Europe/Berlin")


def stored(tenant: str, event_id: str, user: str, when: datetime, **extra: Any) -> dict[str, Any]:
    return {"tenant_id": tenant, "client_event_id": event_id, "user_id": user, "site_id": "hq", "device_id": "phone-1",
            "event_type": "check_in", "occurred_at": when, "latitude": 52.52, "longitude": 13.40,
            "gps_accuracy_m": 8.0, "face_match_confidence": 0.97, "biometric_verified": True, **extra}


@pytest.fixture
def memory() -> FraudMemory:
    memory = FraudMemory(sites={f"{T1}|hq": SITE, f"{T2}|hq": SITE})
    memory.events = [stored(T1, f"e{d}", "ann", NOW - timedelta(days=d)) for d in range(1, 8)]
    memory.events.append(stored(T2, "secret", "bob", NOW - timedelta(hours=1)))
    return memory


@pytest.fixture
def services(memory: FraudMemory) -> FraudServices:
    return in_memory_fraud_services(memory)


def spoofed(event_id: str = "now-1") -> AttendanceEventIn:
    """Far outside the geofence with a failed face match, at 3 a.m. local time."""
    return AttendanceEventIn(client_event_id=event_id, user_id="ann", site_id="hq", device_id="phone-1",
                             event_type="check_in", occurred_at=NOW.replace(hour=2), latitude=48.14, longitude=11.58,
                             gps_accuracy_m=5.0, face_match_confidence=0.2, biometric_verified=False)


def test_before_any_model_the_rules_answer_and_the_answer_is_logged(services: FraudServices) -> None:
    answer = answer_fraud(services, T1, spoofed(), "req-1", now=NOW)
    assert answer["scope"] == "heuristic" and answer["thresholds"]["source"] == "default"
    assert answer["features"]["gps_drift_meters"] > 100_000  # about 500 km from the site
    assert {reason["feature"] for reason in answer["reasons"]} == {"gps_drift_meters", "face_recognition_confidence",
                                                              "hour_of_day"}
    assert answer["decision"] in {"review", "block"}
    logged = read_fraud_prediction(services, T1, answer["prediction_id"])
    assert logged["fraud_score"] == pytest.approx(answer["fraud_score"]) and logged["decision"] == answer["decision"]
    with pytest.raises(NotFound):
        read_fraud_prediction(services, T2, answer["prediction_id"])


def test_a_stored_event_is_scored_by_reference_and_an_unknown_or_foreign_one_is_not_found(
    services: FraudServices,
) -> None:
    assert answer_fraud(services, T1, StoredEventRef(client_event_id="e1"), "req-2", now=NOW)["client_event_id"] == "e1"
    for tenant, event_id in ((T1, "never-stored"), (T1, "secret")):
        with pytest.raises(NotFound):
            answer_fraud(services, tenant, StoredEventRef(client_event_id=event_id), "req-3", now=NOW)
    assert len(services.log.rows) == 1  # type: ignore[attr-defined]  # refusals log nothing


def test_the_tenants_own_operating_point_moves_the_decision(services: FraudServices) -> None:
    before = answer_fraud(services, T1, spoofed("a"), "req-4", now=NOW)
    with services.transactions.transaction() as tx:
        services.operating_points.set(tx, T1, 0.99, 0.999, "staff")
    after = answer_fraud(services, T1, spoofed("b"), "req-5", now=NOW)
    assert before["decision"] != "allow" and after["decision"] == "allow"
    assert after["thresholds"] == {"review_threshold": 0.99, "block_threshold": 0.999, "source": "tenant"}
    assert answer_fraud(services, T2, spoofed("c"), "req-6", now=NOW)["thresholds"]["source"] == "default"


def test_outcomes_follow_the_label_policy(memory: FraudMemory, services: FraudServices) -> None:
    for event_id in ("e1", "e2", "e7"):
        answer_fraud(services, T1, StoredEventRef(client_event_id=event_id), f"req-{event_id}", now=NOW)
    memory.labels[(T1, "e1")] = True
    assert track_outcomes(services.transactions, services.outcomes, services.log, NOW)["labelled"] == 1
    later = NOW + timedelta(days=30)  # e2 and e7 are now over 30 days old without a label: legitimate
    assert track_outcomes(services.transactions, services.outcomes, services.log, later)["labelled"] == 2
    memory.labels[(T1, "e7")] = True  # an investigator's late verdict overrides the default
    assert track_outcomes(services.transactions, services.outcomes, services.log, later)["labelled"] == 1
    outcomes = {row["client_event_id"]: row["outcome"] for row in services.log.rows}  # type: ignore[attr-defined]
    assert outcomes == {"e1": True, "e2": False, "e7": True}


def test_a_retrained_tenant_model_answers_with_its_own_reasons() -> None:
    end = datetime(2026, 11, 1, tzinfo=UTC)
    memory = FraudMemory.from_demo(generate_fraud_history(FraudDemoConfig(tenants=(("acme", 60),), days=90, end=end)))
    services = in_memory_fraud_services(memory)
    report = retrain(FRAUD, services.training, services.registry, services.locks, tenant_id="acme", now=end)
    assert report["promoted"] is True, report
    frauds = [e for e in memory.events if e["tenant_id"] == "acme" and memory.labels.get(("acme", e["client_event_id"]))]
    answer = answer_fraud(services, "acme", StoredEventRef(client_event_id=frauds[-1]["client_event_id"]),
                          "req-7", now=end)
    assert answer["scope"] == "tenant" and answer["model_version"] != "heuristic"
    assert answer["reasons"] and all(reason["contribution"] > 0 for reason in answer["reasons"])
    other = answer_fraud(services, "globex", spoofed("g-1"), "req-8", now=end)
    assert other["scope"] == "heuristic"  # acme's model never answers for globex
