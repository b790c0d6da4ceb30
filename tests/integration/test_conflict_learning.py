"""Training, outcome tracking and retraining against real PostgreSQL and LocalStack S3."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from chalice.test import Client

from shared.conflict.demo_data import DemoConfig, generate_sync_history
from shared.conflict.events import SyncEvent
from shared.conflict.events_repository import store_sync_events
from shared.conflict.model import FEATURE_NAMES, LinearConflictModel, load_model
from shared.conflict.outcomes import track_conflict_outcomes
from shared.conflict.prediction import ConflictPredictionRequest, predict_conflict
from shared.conflict.retraining import retrain_conflict_model
from shared.conflict.training import train_candidate
from shared.context import AppContext
from shared.demo import seed_sync_history
from shared.errors import Conflict, InsufficientData

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)
SMALL = DemoConfig(tenants=("acme", "globex"), users_per_tenant=25, entities_per_tenant=120, days=30, end=NOW)


def seed(context: AppContext, config: DemoConfig = SMALL) -> dict[str, str]:
    tenant_ids = {slug: context.tenants.create_tenant(slug, slug).tenant_id for slug in config.tenants}
    seed_sync_history(context, tenant_ids, generate_sync_history(config))
    return tenant_ids


def register_model(context: AppContext, model: LinearConflictModel, activate: bool = True) -> Any:
    version = context.registry.register(kind="conflict", tenant_id=None, artifact=model.to_artifact(),
                                        artifact_format="json", manifest={"note": "test"}, actor="test")
    if activate:
        context.registry.activate(version.version_id, actor="test")
    return version


def inverted(model: LinearConflictModel) -> LinearConflictModel:
    """A champion that ranks backwards: any honest candidate beats it."""
    return replace(model, coefficients=-model.coefficients, intercept=-model.intercept)


def active_count(context: AppContext) -> int:
    with context.database.transaction() as tx:
        return int(tx.fetch_value("SELECT count(*) FROM model_versions WHERE kind='conflict' AND status='active'"))


def test_demo_history_trains_a_model_that_meets_the_target(context: AppContext) -> None:
    seed(context, replace(DemoConfig(), end=NOW))
    result = train_candidate(context, end=NOW, days_back=90)
    metrics = result.metrics
    assert metrics["roc_auc"] >= 0.75, metrics
    assert 0 < metrics["brier"] < 0.2
    assert result.version is not None and result.version.status == "candidate"
    manifest = result.version.manifest
    assert manifest["feature_names"] == list(FEATURE_NAMES)
    assert manifest["rows"] == manifest["split"]["train_rows"] + manifest["split"]["holdout_rows"]
    assert manifest["split"]["holdout_start"] > manifest["training_window"]["start"]


def test_too_little_data_is_refused_and_registers_nothing(context: AppContext) -> None:
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    events = [
        SyncEvent(client_event_id=f"e{i}", user_id=f"u{i % 4}", device_id="d", domain="voice", entity_type="recording",
                  entity_id=f"r{i % 7}", fields_changed=["notes"], received_at=NOW - timedelta(hours=i),
                  conflicted=False)
        for i in range(300)
    ]
    with context.database.transaction() as tx:
        store_sync_events(tx, tenant, events, NOW)
    with pytest.raises(InsufficientData, match="conflicts"):
        train_candidate(context, end=NOW)
    assert context.registry.list_versions() == []


def test_a_better_candidate_replaces_a_backwards_champion(context: AppContext) -> None:
    seed(context)
    baseline = train_candidate(context, end=NOW, register=False)
    champion = register_model(context, inverted(baseline.model))
    outcome = retrain_conflict_model(context, now=NOW)
    assert outcome["promoted"] is True, outcome
    assert outcome["bootstrap_interval"][0] > 0
    active = context.registry.active_version("conflict", None)
    assert active is not None and active.version_id == outcome["candidate"] != champion.version_id


def test_a_candidate_no_better_than_the_champion_is_not_promoted(context: AppContext) -> None:
    seed(context)
    first = retrain_conflict_model(context, now=NOW)
    assert first["promoted"] is True  # no champion yet: the first good model serves
    second = retrain_conflict_model(context, now=NOW)
    assert second["promoted"] is False
    assert "5 %" in second["reason"] or "significant" in second["reason"]
    assert context.registry.active_version("conflict", None).version_id == first["candidate"]
    decisions = [row["action"] for row in context.registry.audit_trail() if row["action"] in ("promoted", "kept_champion")]
    assert decisions == ["kept_champion", "promoted"]


def test_two_concurrent_retrains_never_both_promote(context: AppContext) -> None:
    seed(context)
    baseline = train_candidate(context, end=NOW, register=False)
    register_model(context, inverted(baseline.model))
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def run() -> None:
        own = AppContext(context.settings)
        try:
            results.append(retrain_conflict_model(own, now=NOW))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            own.database.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(1 for r in results if r["promoted"]) == 1, results
    assert active_count(context) == 1


def test_outcomes_are_labelled_once_and_live_metrics_stored(context: AppContext) -> None:
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    predicted_at = NOW - timedelta(hours=30)

    def ask(user: str, entity: str, at: datetime) -> str:
        request = ConflictPredictionRequest(domain="voice", user_id=user, entity_type="recording", entity_id=entity)
        return predict_conflict(context, tenant, request, request_id=f"{user}-{entity}", now=at)["prediction_id"]

    conflicted = ask("alice", "r1", predicted_at)
    clean = ask("bob", "r2", predicted_at)
    too_late = ask("carol", "r3", predicted_at)
    too_recent = ask("dave", "r4", NOW - timedelta(hours=2))
    later = [
        ("alice", "r1", predicted_at + timedelta(hours=3), True),
        ("bob", "r2", predicted_at + timedelta(hours=3), False),
        ("carol", "r3", predicted_at + timedelta(hours=25), True),   # outside the 24 h horizon
        ("dave", "r4", NOW - timedelta(hours=1), True),
    ]
    with context.database.transaction() as tx:
        store_sync_events(tx, tenant, [
            SyncEvent(client_event_id=f"later-{i}", user_id=u, device_id="d", domain="voice", entity_type="recording",
                      entity_id=e, fields_changed=["notes"], received_at=at, conflicted=c,
                      conflict_fields=["notes"] if c else [])
            for i, (u, e, at, c) in enumerate(later)
        ], NOW)
    first = track_conflict_outcomes(context, now=NOW)
    assert first["labelled"] == 3
    with context.database.transaction() as tx:
        outcomes = {str(r["prediction_id"]): r["outcome"] for r in tx.fetch_all(
            "SELECT prediction_id, outcome FROM conflict_predictions")}
    assert outcomes == {conflicted: True, clean: False, too_late: False, too_recent: None}
    assert track_conflict_outcomes(context, now=NOW)["labelled"] == 0
    heuristic = [m for m in first["metrics"] if m["model_label"].startswith("heuristic")]
    assert {m["window_days"] for m in heuristic} == {7, 30}
    assert heuristic[0]["predictions"] == 3 and heuristic[0]["positives"] == 1
    with context.database.transaction() as tx:
        labelled = tx.fetch_all("SELECT probability, outcome FROM conflict_predictions WHERE outcome IS NOT NULL")
    probabilities = [r["probability"] for r in labelled]
    outcomes = [r["outcome"] for r in labelled]
    from shared.platform.metrics import brier_score, roc_auc

    assert heuristic[0]["roc_auc"] == pytest.approx(roc_auc(outcomes, probabilities), abs=1e-12)
    assert heuristic[0]["brier"] == pytest.approx(brier_score(outcomes, probabilities), abs=1e-12)
    with context.database.transaction() as tx:
        assert tx.fetch_value("SELECT count(*) FROM model_live_metrics") == 4


def test_challenger_answers_its_share_and_the_log_says_so(context: AppContext) -> None:
    seed(context)
    champion = train_candidate(context, end=NOW)
    context.registry.activate(champion.version.version_id, actor="test")
    challenger = train_candidate(context, end=NOW)
    context.registry.set_challenger(challenger.version.version_id, 0.5, actor="test")
    tenant = context.tenants.find_tenant("acme").tenant_id
    variants = [
        predict_conflict(context, tenant, ConflictPredictionRequest(
            domain="voice", user_id="u", entity_type="recording", entity_id=f"x{i}"), request_id=f"req-{i}")["variant"]
        for i in range(60)
    ]
    assert {"champion", "challenger"} == set(variants)
    assert 10 < variants.count("challenger") < 50
    with context.database.transaction() as tx:
        logged = tx.fetch_all("SELECT variant, model_label FROM conflict_predictions WHERE variant = 'challenger'")
    assert logged and all(r["model_label"] == challenger.version.label for r in logged)


def test_a_tampered_champion_degrades_to_the_heuristic(context: AppContext) -> None:
    seed(context)
    result = train_candidate(context, end=NOW)
    context.registry.activate(result.version.version_id, actor="test")
    context.object_store.put(result.version.artifact_key, result.model.to_artifact().replace(b"intercept", b"intercepT"))
    tenant = context.tenants.find_tenant("acme").tenant_id
    answer = predict_conflict(context, tenant, ConflictPredictionRequest(
        domain="voice", user_id="u", entity_type="recording", entity_id="x"), request_id="r")
    assert answer["degraded"] is True and answer["model_version"] == "heuristic-v1"
    assert context.registry.audit_trail(result.version.version_id)[0]["action"] == "artifact_rejected"


def test_scheduled_handlers_run_through_chalice_with_cloudwatch_events(app_environment: dict[str, str]) -> None:
    from app import app
    from shared.context import get_context

    context = get_context()
    seed(context)
    with Client(app, stage_name="local") as client:
        event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                                resources=["arn:aws:events:us-east-1:1:rule/retrain"])
        retrained = client.lambda_.invoke("retrain_conflict", event).payload["ran_in_process"]["global"]
        assert retrained["promoted"] is True
        tracked = client.lambda_.invoke("track_conflict_outcomes", event).payload
        assert tracked["labelled"] == 0
    active = context.registry.active_version("conflict", None)
    assert active is not None and active.version_id == retrained["candidate"]
    # The promoted artifact lives in LocalStack S3 and verifies.
    assert isinstance(context.registry.load_verified(active), dict)
    assert np.isfinite(load_model(context.registry.load_verified(active)).intercept)


def test_a_champion_that_fails_verification_is_replaced_by_the_next_retrain(context: AppContext) -> None:
    seed(context)
    first = retrain_conflict_model(context, now=NOW)
    champion = context.registry.get(first["candidate"])
    context.object_store.put(champion.artifact_key, b'{"tampered": true}')
    outcome = retrain_conflict_model(context, now=NOW)
    assert outcome["promoted"] is True, outcome
    assert "unusable" in outcome["reason"] and outcome["champion"] == champion.version_id
    assert context.registry.active_version("conflict", None).version_id == outcome["candidate"]


@pytest.mark.parametrize("events", [0, 1, 2, 150])
def test_a_tiny_window_is_a_clear_refusal(context: AppContext, events: int) -> None:
    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    if events:
        with context.database.transaction() as tx:
            store_sync_events(tx, tenant, [
                SyncEvent(client_event_id=f"e{i}", user_id="u", device_id="d", domain="voice", entity_type="recording",
                          entity_id="r", fields_changed=["notes"], received_at=NOW - timedelta(hours=i + 1),
                          conflicted=i % 2 == 0)
                for i in range(events)
            ], NOW)
    with pytest.raises(InsufficientData, match="at least 200"):
        train_candidate(context, end=NOW)
    assert retrain_conflict_model(context, now=NOW)["promoted"] is False
    assert context.registry.list_versions() == []


def test_activation_against_a_stale_champion_is_refused(context: AppContext) -> None:
    seed(context)
    baseline = train_candidate(context, end=NOW, register=False)
    first = register_model(context, baseline.model)
    second = register_model(context, baseline.model, activate=False)
    third = register_model(context, baseline.model, activate=False)
    context.registry.activate(second.version_id, actor="other retrain", expected_active_id=first.version_id)
    with pytest.raises(Conflict, match="changed meanwhile"):
        context.registry.activate(third.version_id, actor="late retrain", expected_active_id=first.version_id)
    assert context.registry.active_version("conflict", None).version_id == second.version_id


def test_batch_scoring_uses_the_champion_whatever_the_challenger_share(context: AppContext, tmp_path: Any) -> None:
    import csv
    import io

    from shared.conflict.scoring import score_conflict_csv

    seed(context)
    champion = train_candidate(context, end=NOW)
    context.registry.activate(champion.version.version_id, actor="test")
    challenger = train_candidate(context, end=NOW)
    context.registry.set_challenger(challenger.version.version_id, 0.99, actor="test")
    tenant = context.tenants.find_tenant("acme").tenant_id
    out = io.StringIO()
    score_conflict_csv(context, tenant, io.StringIO("user_id,domain,entity_type,entity_id\nu,voice,recording,r\n"), out)
    assert [r["model_version"] for r in csv.DictReader(io.StringIO(out.getvalue()))] == [champion.version.label]


def test_an_active_non_serving_artifact_degrades_and_is_refused_once_per_interval(context: AppContext) -> None:
    import pickle

    from shared.platform.serving_cache import ServingModels

    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    version = context.registry.register(kind="conflict", tenant_id=None, artifact=pickle.dumps({"w": 1}),
                                        artifact_format="joblib", manifest={}, actor="test")
    context.registry.activate(version.version_id, actor="test")
    context.__dict__["serving_models"] = ServingModels(context.registry, refresh_seconds=60)
    answers = [
        predict_conflict(context, tenant, ConflictPredictionRequest(
            domain="voice", user_id="u", entity_type="recording", entity_id=f"x{i}"), request_id=f"r{i}")
        for i in range(3)
    ]
    assert all(a["degraded"] and a["model_version"] == "heuristic-v1" for a in answers)

    tampered = context.registry.register(kind="conflict", tenant_id=None, artifact=b'{"serving_form": "x"}',
                                         artifact_format="json", manifest={}, actor="test")
    context.object_store.put(tampered.artifact_key, b'{"serving_form": "y"}')
    context.registry.activate(tampered.version_id, actor="test")
    context.__dict__["serving_models"] = ServingModels(context.registry, refresh_seconds=60)
    for i in range(3):
        answer = predict_conflict(context, tenant, ConflictPredictionRequest(
            domain="voice", user_id="u", entity_type="recording", entity_id=f"y{i}"), request_id=f"s{i}")
        assert answer["degraded"] is True
    rejections = [r for r in context.registry.audit_trail(tampered.version_id) if r["action"] == "artifact_rejected"]
    assert len(rejections) == 1  # remembered for the refresh interval, not re-fetched per request


def test_live_metrics_in_sql_match_numpy_with_ties(context: AppContext) -> None:
    from shared.platform.metrics import brier_score, roc_auc

    tenant = context.tenants.create_tenant("acme", "Acme").tenant_id
    rng = np.random.default_rng(11)
    outcomes = rng.random(400) < 0.25
    probabilities = np.round(np.clip(outcomes * 0.25 + rng.random(400) * 0.75, 0, 1), 1)  # many ties
    ages_days = rng.uniform(1.1, 29, 400)
    with context.database.transaction() as tx:
        for p, y, age in zip(probabilities, outcomes, ages_days, strict=True):
            tx.execute(
                "INSERT INTO conflict_predictions (tenant_id, request_id, user_id, domain, entity_type, entity_id,"
                " features, probability, risk_level, model_label, variant, predicted_at, outcome, outcome_at)"
                " VALUES (CAST(:t AS uuid), 'r', 'u', 'voice', 'recording', 'e', '{}', :p, 'low', 'm-v1', 'champion',"
                " CAST(:now AS timestamptz) - make_interval(secs => :age), :y, :now)",
                t=tenant, p=float(p), y=bool(y), age=float(age * 86400), now=NOW,
            )
    metrics = {m["window_days"]: m for m in track_conflict_outcomes(context, now=NOW)["metrics"]}
    week = ages_days <= 7
    for window, chosen in ((30, np.ones(400, dtype=bool)), (7, week)):
        assert metrics[window]["predictions"] == int(chosen.sum())
        assert metrics[window]["roc_auc"] == pytest.approx(roc_auc(outcomes[chosen], probabilities[chosen]), abs=1e-9)
        assert metrics[window]["brier"] == pytest.approx(brier_score(outcomes[chosen], probabilities[chosen]), abs=1e-9)


def test_the_demo_replay_asks_before_each_upload_so_its_outcomes_count_the_event_itself(context: AppContext) -> None:
    """The replayed prediction of a sync that conflicted is labelled conflicted: it is asked just
    before the event arrived, and an outcome is a conflict received after the prediction."""
    from shared.conflict.demo_replay import replay_predictions

    tenants = seed(context)
    acme = tenants["acme"]
    with context.database.transaction() as tx:
        expected = {(r["user_id"], r["entity_id"], r["received_at"]): r["conflicted"] for r in tx.fetch_all(
            "SELECT user_id, entity_id, received_at, conflicted FROM sync_events WHERE tenant_id = CAST(:t AS uuid)"
            " AND received_at >= CAST(:since AS timestamptz) AND received_at < CAST(:until AS timestamptz)",
            t=acme, since=NOW - timedelta(days=21), until=NOW - timedelta(days=1))}
    assert replay_predictions(context, acme, now=NOW)["predictions"] > 0
    with context.database.transaction() as tx:
        logged = tx.fetch_all("SELECT user_id, entity_id, predicted_at, outcome FROM conflict_predictions"
                              " WHERE tenant_id = CAST(:t AS uuid) AND outcome IS NOT NULL", t=acme)
    # Each replayed prediction of an event that conflicted (asked at most a second before it arrived).
    asked_of_conflicts = [row for row in logged if any(
        conflicted and user == row["user_id"] and entity == row["entity_id"]
        and timedelta(0) <= received - row["predicted_at"] <= timedelta(seconds=1)
        for (user, entity, received), conflicted in expected.items())]
    assert asked_of_conflicts and all(row["outcome"] for row in asked_of_conflicts)


def test_the_weekly_job_retrains_the_global_model_and_each_tenants_own(context: AppContext) -> None:
    """A tenant given its own model (`train conflict --tenant`) is retrained in its scope each week;
    a tenant the global model serves is not given one by the schedule."""
    from shared.slices import job_named

    tenants = seed(context)
    own = train_candidate(context, end=NOW, tenant_id=tenants["acme"]).version
    assert own is not None
    context.registry.activate(own.version_id, actor="test")
    report = job_named("retrain-conflict").run(context)
    ran = report["ran_in_process"]
    assert set(ran) == {"global", tenants["acme"]}
    assert ran[tenants["acme"]]["candidate"] != ran["global"]["candidate"]
    scopes = {v.version_id: v.tenant_id for v in context.registry.list_versions(kind="conflict",
                                                                              tenant_id=tenants["acme"])}
    assert scopes[ran[tenants["acme"]]["candidate"]] == tenants["acme"]
