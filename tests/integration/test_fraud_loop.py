"""The fraud loop against the real PostgreSQL and object store: intake, scoring with the fallback
chain, tenant isolation, outcomes, the operating point, the CLI's imports and batch scoring."""

from __future__ import annotations

import csv
import json
import socket
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from chalice.test import Client

from shared.context import AppContext
from shared.errors import InsufficientData, InvalidInput
from shared.fraud.demo import seed_fraud_history
from shared.fraud.demo_data import FraudDemoConfig, generate_fraud_history
from shared.fraud.features import FEATURE_NAMES
from shared.fraud.ingest import ingest_attendance
from shared.fraud.learning import track_fraud_outcomes, train_fraud_candidate
from shared.fraud.prediction import StoredEventRef, predict_fraud
from shared.fraud.scoring import score_fraud_file
from tests.conftest import auth

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)
CONFIG = FraudDemoConfig(tenants=(("acme", 60), ("globex", 40), ("tiny", 6)), days=120, end=NOW, seed=11)


@pytest.fixture(scope="module")
def history() -> dict[str, dict[str, Any]]:
    return generate_fraud_history(CONFIG)


def seed(context: AppContext, history: dict[str, dict[str, Any]]) -> dict[str, str]:
    tenant_ids = {slug: context.tenants.create_tenant(slug, slug).tenant_id for slug in history}
    seed_fraud_history(context, tenant_ids, history)
    return tenant_ids


def activate(context: AppContext, tenant_id: str | None) -> Any:
    version = train_fraud_candidate(context, tenant_id=tenant_id, end=NOW).version
    context.registry.activate(version.version_id, actor="test")
    return version


def an_event(cid: str, site: str, **changes: Any) -> dict[str, Any]:
    return {"client_event_id": cid, "user_id": "someone", "site_id": site, "device_id": "phone-x",
            "event_type": "check_in", "occurred_at": NOW.isoformat(), "latitude": None, "longitude": None,
            "gps_accuracy_m": None, "face_match_confidence": 0.9, "biometric_verified": True, **changes}


def test_each_tenant_is_scored_by_its_own_model_or_the_global_one(context: AppContext, history: Any) -> None:
    tenants = seed(context, history)
    global_version = activate(context, None)
    acme_version = activate(context, tenants["acme"])
    acme_site = history["acme"]["sites"][0]["site_id"]
    acme = predict_fraud(context, tenants["acme"], StoredEventRef(client_event_id=history["acme"]["events"][-1]["client_event_id"]), "r1")
    tiny_event = history["tiny"]["events"][-1]
    tiny = predict_fraud(context, tenants["tiny"], StoredEventRef(client_event_id=tiny_event["client_event_id"]), "r2")
    assert (acme["scope"], acme["model_version"]) == ("tenant", acme_version.label)
    assert (tiny["scope"], tiny["model_version"]) == ("global", global_version.label)
    assert acme["decision"] in ("allow", "review", "block") and acme["thresholds"]["source"] == "model"
    # Tenant A's model was trained on A's rows only: B's labels never train A.
    with context.database.transaction() as tx:
        acme_rows = tx.fetch_value(
            "SELECT count(*) FROM attendance_events e LEFT JOIN fraud_labels l USING (tenant_id, client_event_id)"
            " WHERE e.tenant_id = CAST(:t AS uuid) AND e.occurred_at >= :start AND e.occurred_at < :end"
            " AND (l.is_fraud IS NOT NULL OR e.occurred_at <= CAST(:end AS timestamptz) - INTERVAL '30 days')",
            t=tenants["acme"], start=NOW - timedelta(days=183), end=NOW)
    assert acme_version.manifest["rows"] == acme_rows
    # Another tenant's event id is not found, whoever asks.
    from shared.errors import NotFound
    with pytest.raises(NotFound):
        predict_fraud(context, tenants["globex"], StoredEventRef(client_event_id=history["acme"]["events"][-1]["client_event_id"]), "r3")
    # A spoofed position far outside the geofence scores higher than the same event on site, both at
    # an ordinary working time (at NOW, the run's own hour of the day, a night check-in is odd anyway).
    site = history["acme"]["sites"][0]
    zone = ZoneInfo(site["timezone"])
    day = NOW.astimezone(zone).date() - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    working = datetime.combine(day, time(10), zone).astimezone(UTC).isoformat()
    honest = predict_fraud(context, tenants["acme"], _event(an_event("h1", acme_site, latitude=site["latitude"],
                                                                     longitude=site["longitude"], gps_accuracy_m=8.0,
                                                                     occurred_at=working)), "r4")
    spoofed = predict_fraud(context, tenants["acme"], _event(an_event("s1", acme_site, latitude=site["latitude"] + 0.3,
                                                                      longitude=site["longitude"], gps_accuracy_m=8.0,
                                                                      face_match_confidence=0.2, biometric_verified=False,
                                                                      occurred_at=working)), "r5")
    assert spoofed["fraud_score"] > honest["fraud_score"]
    assert {r["feature"] for r in spoofed["reasons"]} & {"gps_drift_meters", "face_recognition_confidence",
                                                          "location_consistency_score", "implied_speed_kmh"}


def _event(raw: dict[str, Any]) -> Any:
    from shared.fraud.intake import AttendanceEventIn

    return AttendanceEventIn.model_validate(raw)


def test_a_tampered_booster_is_never_loaded_and_the_rules_answer(context: AppContext, history: Any) -> None:
    tenants = seed(context, {"acme": history["acme"]})
    version = activate(context, tenants["acme"])
    context.object_store.put(version.artifact_key, b"{not a booster}")
    answer = predict_fraud(context, tenants["acme"], StoredEventRef(client_event_id=history["acme"]["events"][-1]["client_event_id"]), "r1")
    assert answer["scope"] == "heuristic" and answer["degraded"] is True and answer["model_version"] == "fraud-rules-v1"
    assert context.registry.audit_trail(version.version_id)[0]["action"] == "artifact_rejected"


def test_outcomes_join_labels_and_the_30_day_rule(context: AppContext, history: Any) -> None:
    small = {"acme": {**history["acme"], "labels": []}}
    tenants = seed(context, small)
    events = history["acme"]["events"]
    old, recent = events[0], events[-1]
    for e, rid in ((old, "old"), (recent, "recent")):
        predict_fraud(context, tenants["acme"], StoredEventRef(client_event_id=e["client_event_id"]), rid)
    first = track_fraud_outcomes(context, now=NOW)
    assert first["labelled"] == 1  # the old event: 30 days without a label = legitimate
    with context.database.transaction() as tx:
        from shared.fraud.intake import FraudLabelIn
        from shared.fraud.intake_repository import store_labels
        store_labels(tx, tenants["acme"], [FraudLabelIn(client_event_id=recent["client_event_id"], is_fraud=True),
                                          FraudLabelIn(client_event_id=old["client_event_id"], is_fraud=True)])
    second = track_fraud_outcomes(context, now=NOW)
    assert second["labelled"] == 2  # the new label, and the late label overriding the default
    with context.database.transaction() as tx:
        outcomes = {r["client_event_id"]: r["outcome"] for r in tx.fetch_all(
            "SELECT client_event_id, outcome FROM fraud_predictions")}
    assert outcomes == {old["client_event_id"]: True, recent["client_event_id"]: True}
    assert track_fraud_outcomes(context, now=NOW)["labelled"] == 0


def test_http_intake_labels_scoring_and_operating_point(
    app_environment: dict[str, str], tenant_keys: dict[str, Any], history: Any,
) -> None:
    from app import app

    acme, globex = tenant_keys["acme"], tenant_keys["globex"]
    site = {**history["acme"]["sites"][0], "site_id": "hq"}
    with Client(app) as client:
        def post(path: str, key: str, body: Any) -> Any:
            return client.http.post(path, headers=auth(key), body=json.dumps(body))

        assert post("/api/v2/sites", acme["client"], site).status_code == 403  # staff only
        assert post("/api/v2/sites", acme["staff"], site).status_code == 200
        bad_zone = post("/api/v2/sites", acme["staff"], {**site, "timezone": "Mars/Olympus"})
        assert bad_zone.status_code == 400 and "time zone" in bad_zone.json_body["error"]["fields"][0]["reason"]
        event = an_event("e-1", "hq", latitude=site["latitude"], longitude=site["longitude"], gps_accuracy_m=5.0)
        first = post("/api/v2/attendance/events", acme["client"], event)
        assert first.status_code == 200 and post("/api/v2/attendance/events", acme["client"], event).json_body == first.json_body
        changed = post("/api/v2/attendance/events", acme["client"], {"events": [
            {**event, "client_event_id": "e-2"}, {**event, "face_match_confidence": 0.1}]})
        assert changed.status_code == 409
        half = post("/api/v2/attendance/events", acme["client"], {**event, "latitude": None})
        assert half.status_code == 400 and half.json_body["error"]["fields"]
        assert post("/api/v2/fraud/labels", acme["staff"], {"client_event_id": "e-1", "is_fraud": 1}).json_body == {"labels": 1}
        assert post("/api/v2/fraud/labels", globex["staff"], {"client_event_id": "e-1", "is_fraud": 1}).status_code == 404
        answer = post("/api/v2/predict/fraud", acme["client"], {"client_event_id": "e-1"})
        assert answer.status_code == 200 and answer.json_body["degraded"] is True and answer.json_body["decision"]
        assert set(answer.json_body["features"]) == set(FEATURE_NAMES)
        read = client.http.get(f"/api/v2/predictions/fraud/{answer.json_body['prediction_id']}", headers=auth(acme["client"]))
        assert read.status_code == 200 and read.json_body["client_event_id"] == "e-1"
        assert client.http.get(f"/api/v2/predictions/fraud/{answer.json_body['prediction_id']}",
                               headers=auth(globex["client"])).status_code == 404
        assert post("/api/v2/predict/fraud", globex["client"], {"client_event_id": "e-1"}).status_code == 404
        moved = client.http.put("/api/v2/fraud/operating-point", headers=auth(acme["staff"]),
                                body=json.dumps({"review_threshold": 0.01, "block_threshold": 0.99}))
        assert moved.status_code == 200 and moved.json_body["source"] == "tenant"
        again = post("/api/v2/predict/fraud", acme["client"], {"client_event_id": "e-1"})
        assert again.json_body["decision"] == "review" and again.json_body["thresholds"]["review_threshold"] == 0.01
        wrong = client.http.put("/api/v2/fraud/operating-point", headers=auth(acme["staff"]),
                                body=json.dumps({"review_threshold": 0.9, "block_threshold": 0.1}))
        assert wrong.status_code == 400


def test_bulk_import_reports_bad_lines_and_batch_scoring(context: AppContext, history: Any, tmp_path: Path) -> None:
    tenants = seed(context, {"acme": history["acme"], "globex": history["globex"]})
    activate(context, tenants["acme"])
    rows = [an_event(f"new-{i}", history["acme"]["sites"][0]["site_id"], occurred_at=(NOW + timedelta(minutes=i)).isoformat())
            for i in range(5)]
    bad = tmp_path / "bad.ndjson"
    bad.write_text("\n".join([json.dumps(rows[0]), "{broken", json.dumps({**rows[1], "event_type": "lunch"})]) + "\n")
    with pytest.raises(InvalidInput) as refused:
        ingest_attendance(context, tenants["acme"], bad)
    assert [p.field for p in refused.value.fields] == ["line 2", "line 3"]
    with context.database.transaction() as tx:
        assert tx.fetch_value("SELECT count(*) FROM attendance_events WHERE client_event_id LIKE 'new-%'") == 0
    source = tmp_path / "in.csv"
    with source.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    summary = score_fraud_file(context, tenants["acme"], source, tmp_path / "out.csv")
    assert summary["rows"] == 5 and summary["scope"] == "tenant"
    with (tmp_path / "out.csv").open() as handle:
        scored = list(csv.DictReader(handle))
    assert [r["client_event_id"] for r in scored] == [r["client_event_id"] for r in rows]
    assert all(0 <= float(r["fraud_score"]) <= 1 and r["decision"] for r in scored)
    # Batch and live agree on the same event (same features, same model).
    live = predict_fraud(context, tenants["acme"], _event(rows[2]), "live")
    assert float(scored[2]["fraud_score"]) == pytest.approx(live["fraud_score"], abs=1e-6)


def test_too_few_labels_is_a_clear_refusal(context: AppContext, history: Any) -> None:
    from shared.errors import InsufficientData

    tenants = seed(context, {"tiny": replace_labels(history["tiny"])})
    with pytest.raises(InsufficientData):
        train_fraud_candidate(context, tenant_id=tenants["tiny"], end=NOW)


def replace_labels(tenant: dict[str, Any]) -> dict[str, Any]:
    return {**tenant, "labels": tenant["labels"][:5]}



def test_fraud_request_path_loads_the_booster_without_scikit_learn_or_pandas(
    app_environment: dict[str, str], tenant_keys: dict[str, Any], history: Any,
) -> None:
    import os
    import subprocess
    import sys

    from shared.context import get_context

    context = get_context()
    seed_fraud_history(context, {"acme": tenant_keys["acme"]["tenant_id"]}, {"acme": history["acme"]})
    version = activate(context, tenant_keys["acme"]["tenant_id"])
    event_id = history["acme"]["events"][-1]["client_event_id"]
    probe = f"""
import json, sys
from chalice.test import Client
from app import app
with Client(app) as c:
    r = c.http.post('/api/v2/predict/fraud', headers={{'Authorization': 'Bearer {tenant_keys['acme']['client']}'}},
                    body=json.dumps({{'client_event_id': '{event_id}'}}).encode())
    assert r.status_code == 200, r.body
    answer = json.loads(r.body)
    assert answer['scope'] == 'tenant' and answer['model_version'] == '{version.label}', answer
print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'pandas')))
"""
    # scipy is xgboost's own dependency (it is in the serving layer); scikit-learn and pandas are not.
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", probe], cwd=root, env={**os.environ, **app_environment},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_run_commands_demo_trains_a_global_and_a_tenant_model(context: AppContext) -> None:
    from shared.demo import DEMO_TENANTS, seed_fraud_demo

    tenant_ids = {slug: context.tenants.create_tenant(slug, slug).tenant_id for slug in DEMO_TENANTS}
    lines: list[str] = []
    seed_fraud_demo(context, tenant_ids, lines, days=75)
    active = {(v.tenant_id, v.status) for v in context.registry.list_versions(kind="fraud") if v.status == "active"}
    assert active == {(None, "active"), (tenant_ids["demo"], "active")}, lines
    small = [e for e in context.database.run_outside_transaction(
        "SELECT client_event_id FROM attendance_events WHERE tenant_id = CAST(:t AS uuid) LIMIT 1",
        t=tenant_ids[DEMO_TENANTS[-1]])]
    answer = predict_fraud(context, tenant_ids[DEMO_TENANTS[-1]], StoredEventRef(client_event_id=small[0][0]), "q")
    assert answer["scope"] == "global"
    # ... and the monthly retraining cannot give it one of its own either: too little data.
    with pytest.raises(InsufficientData):
        train_fraud_candidate(context, tenant_id=tenant_ids[DEMO_TENANTS[-1]], actor="test")
    seed_fraud_demo(context, tenant_ids, lines)
    assert "skipped" in lines[-1]  # a second start reuses what is there


def test_monthly_retraining_fans_out_one_job_per_scope_through_the_queue(
    app_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch, history: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app import app
    from shared.adapters.aws import aws_client
    from shared.context import get_context, reset_context
    from shared.errors import DependencyUnavailable
    from shared.fraud.learning import retrain_all_fraud_models

    sqs = aws_client("sqs", endpoint_url=app_environment["MLSTACK_AWS_ENDPOINT_URL"])
    url = sqs.create_queue(QueueName=f"training-jobs-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    monkeypatch.setenv("MLSTACK_TRAINING_JOBS_QUEUE_URL", url)
    # SQS unreachable (nothing listens on the endpoint): the scheduled run fails loudly, logged,
    # with nothing queued and nothing trained, and the next run queues every scope.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("MLSTACK_AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    reset_context()
    tenants = seed(get_context(), {"acme": history["acme"], "tiny": history["tiny"]})
    capsys.readouterr()
    with Client(app) as client, pytest.raises(DependencyUnavailable, match="0 of 3 fraud training jobs queued"):
        client.lambda_.invoke("retrain_fraud", client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
    failed = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"job.failed"' in line]
    assert failed and failed[0]["job"] == "retrain-fraud" and failed[0]["code"] == "dependency_unavailable"
    assert not sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages")
    monkeypatch.setenv("MLSTACK_AWS_ENDPOINT_URL", app_environment["MLSTACK_AWS_ENDPOINT_URL"])
    reset_context()
    context = get_context()
    assert context.registry.list_versions(kind="fraud") == []
    assert retrain_all_fraud_models(context, now=NOW) == {"queued": 3, "kind": "fraud"}
    messages = []
    while len(messages) < 3:
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        assert received, messages
        messages += received
    jobs = sorted(json.loads(m["Body"])["tenant_id"] or "" for m in messages)
    assert jobs == sorted(["", tenants["acme"], tenants["tiny"]])

    with Client(app) as client:
        def work(message: dict[str, Any]) -> Any:
            event = client.events.generate_sqs_event(queue_name="training-jobs", message_bodies=[message["Body"]])
            return client.lambda_.invoke("train_worker", event).payload

        results = {r["scope"]: r for m in messages for r in work(m)["results"]}
        # SQS delivers at least once: a second copy of a job finds its scope retrained and does nothing.
        again = work(next(m for m in messages if json.loads(m["Body"])["tenant_id"] is None))["results"][0]
    assert again["duplicate"] is True and again["promoted"] is False
    assert results["global"]["promoted"] is True
    # acme's own candidate was judged against what served acme then: the global model, if it came first.
    acme = results[tenants["acme"]]
    assert acme["candidate"] and acme["metric"] == "pr_auc" and acme["reason"]
    assert results[tenants["tiny"]]["promoted"] is False and "confirmed frauds" in results[tenants["tiny"]]["reason"]
    active = {v.tenant_id for v in context.registry.list_versions(kind="fraud") if v.status == "active"}
    assert active == ({None, tenants["acme"]} if acme["promoted"] else {None})


def test_the_dashboard_shows_quality_decisions_and_importance(
    app_environment: dict[str, str], tenant_keys: dict[str, Any], history: Any,
) -> None:
    from app import app
    from shared.context import get_context

    context = get_context()
    acme_id = tenant_keys["acme"]["tenant_id"]
    seed_fraud_history(context, {"acme": acme_id}, {"acme": history["acme"]})
    version = activate(context, acme_id)
    events = history["acme"]["events"]
    old = [e for e in events if datetime.fromisoformat(e["occurred_at"]) < NOW - timedelta(days=31)][-20:]
    for n, e in enumerate(old):
        predict_fraud(context, acme_id, StoredEventRef(client_event_id=e["client_event_id"]), f"d{n}")
    track_fraud_outcomes(context, now=NOW)
    with context.database.transaction() as tx:
        answered = {d: tx.fetch_value("SELECT count(*) FROM fraud_predictions WHERE risk_level = :d", d=d)
                    for d in ("allow", "review", "block")}
    with Client(app) as client:
        assert client.http.get("/api/v2/fraud/dashboard", headers=auth(tenant_keys["acme"]["client"])).status_code == 403
        # The decisions are the ones answered, not recomputed at thresholds moved since.
        moved = client.http.put("/api/v2/fraud/operating-point", headers=auth(tenant_keys["acme"]["staff"]),
                                body=json.dumps({"review_threshold": 0.0, "block_threshold": 0.0}))
        assert moved.status_code == 200
        board = client.http.get("/api/v2/fraud/dashboard", headers=auth(tenant_keys["acme"]["staff"])).json_body
    assert board["traffic"]["decisions"] == answered and answered["allow"] > 0
    assert board["model_version"] == version.label and board["trained"]["metrics"]["pr_auc"] > 0
    assert board["traffic"]["scored"] == 20 and board["traffic"]["with_outcome"] == 20
    confusion = board["confusion_at_review"]
    assert sum(confusion[k] for k in ("true_positives", "false_positives", "false_negatives", "true_negatives")) == 20
    assert set(board["feature_importance"]["mean_abs_contribution"]) == set(FEATURE_NAMES)
    assert board["tradeoff"] and {m["window_days"] for m in board["live_metrics"]} == {7, 30}
    assert board["trained"]["rows"] > 0 and "alerts_per_day" in board["tradeoff"][0]  # its own data, whole

    # A tenant the pooled global model serves sees its rates, not every tenant's volume.
    activate(context, None)
    with Client(app) as client:
        staff = auth(tenant_keys["globex"]["staff"])
        pooled = client.http.get("/api/v2/fraud/dashboard", headers=staff).json_body
        point = client.http.get("/api/v2/fraud/operating-point", headers=staff).json_body
    assert pooled["scope"] == "global" and pooled["trained"]["metrics"]["pr_auc"] > 0
    assert (pooled["trained"]["rows"], pooled["trained"]["window"]) == (None, None)
    assert not {"rows", "positives"} & set(pooled["trained"]["metrics"])
    assert pooled["feature_importance"]["gain"] == {} and board["feature_importance"]["gain"]  # sums over all rows
    for table in (pooled["tradeoff"], point["tradeoff"]):
        assert table and all("alerts_per_day" not in row and row["recall"] is not None for row in table)

    # A target recall moves review; block stays where the model's precision put it (never below
    # review), wherever an earlier target or hand-set thresholds had pushed it.
    with Client(app) as client:
        def put(body: dict[str, float]) -> dict[str, Any]:
            moved = client.http.put("/api/v2/fraud/operating-point", headers=auth(tenant_keys["acme"]["staff"]),
                                    body=json.dumps(body))
            assert moved.status_code == 200, moved.body
            return moved.json_body  # type: ignore[no-any-return]

        strict, loose = put({"target_recall": 0.05}), put({"target_recall": 0.8})
    trained = loose["trained_block_threshold"]
    assert trained is not None and loose["block_threshold"] == max(trained, loose["review_threshold"])
    assert strict["block_threshold"] == max(trained, strict["review_threshold"])


def test_live_scores_read_the_same_features_as_training_from_postgresql(context: AppContext, history: Any) -> None:
    import math

    from shared.fraud.features import HISTORY_DAYS, EventColumns, compute_features
    from shared.fraud.features_repository import load_events, load_holidays, load_sites

    tenants = seed(context, {"acme": history["acme"]})
    with context.database.transaction() as tx:
        events = load_events(tx, tenants["acme"], NOW - timedelta(days=CONFIG.days + HISTORY_DAYS), NOW + timedelta(days=1))
        sites, holidays = load_sites(tx, tenants["acme"]), load_holidays(tx, tenants["acme"])
    columns = EventColumns.from_rows(events)
    training = compute_features(columns, columns, sites, holidays)
    for i in range(len(events) - 1, len(events) - 400, -20):
        live = predict_fraud(context, tenants["acme"], StoredEventRef(client_event_id=events[i]["client_event_id"]),
                             f"same-{i}")["features"]
        for name in FEATURE_NAMES:
            expected = float(training[name][i])
            assert (live[name] is None and math.isnan(expected)) or live[name] == pytest.approx(expected, rel=1e-7, abs=1e-9), (name, i)
