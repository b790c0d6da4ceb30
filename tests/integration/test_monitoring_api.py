"""Monitoring against the real PostgreSQL and LocalStack: operator-only routes, idempotent metric
intake, the scan's alert reaching an SQS subscriber of the SNS topic, incidents and silences over
the API, drift per tenant, the minute collection and retention, and a scan path without
scikit-learn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.local_gateway import local_test_client
from shared.monitoring.series_repository import Point
from tests.conftest import auth

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def operator_key() -> str:
    from shared.context import get_context

    directory = get_context().tenants
    tenant, keys = directory.create_tenant_with_keys("platform", "Platform", ("operator", "service"))
    return keys[0].secret


def history(source: str, metric: str, end: datetime, minutes: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{"source": source, "metric": metric, "ts": (end - timedelta(minutes=minutes - m)).isoformat(),
             "value": round(100 + float(rng.normal(0, 3)), 3)} for m in range(minutes)]


def test_operator_routes_intake_scan_and_the_alert_on_an_sqs_subscriber(
    app_environment: dict[str, str], tenant_keys: dict[str, Any], aws_endpoint_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app import app
    from shared.adapters.aws import aws_client
    from shared.context import get_context, reset_context
    from shared.slices import job_named

    sns, sqs = aws_client("sns", endpoint_url=aws_endpoint_url), aws_client("sqs", endpoint_url=aws_endpoint_url)
    topic = sns.create_topic(Name=f"alerts-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"alerts-sub-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    monkeypatch.setenv("MLSTACK_ALERTS_TOPIC_ARN", topic)
    reset_context()

    operator = operator_key()
    staff, client_key = tenant_keys["acme"]["staff"], tenant_keys["acme"]["client"]
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    batch = {"points": history("host-x", "latency_ms", now - timedelta(minutes=1), 240)}
    with local_test_client(app) as client:
        def post(path: str, body: Any, key: str) -> Any:
            return client.http.post(path, headers=auth(key), body=json.dumps(body).encode())

        assert post("/api/v2/metrics", batch, client_key).status_code == 403
        # A tenant's service key writes series of its own, never the platform's: its "database"
        # point lands under tenant:<id>/ and the platform's database series is untouched.
        from shared.context import get_context as context_now

        directory = context_now().tenants
        service_key = directory.create_key(tenant_keys["acme"]["tenant_id"], "service").secret
        spoof = {"points": [{"source": "database", "metric": "connections_active", "ts": now.isoformat(), "value": 0}]}
        assert json.loads(post("/api/v2/metrics", spoof, service_key).body)["stored"] == 1
        with context_now().database.transaction() as tx:
            sources = {r["source"] for r in tx.fetch_all("SELECT source FROM metric_series")}
        assert f"tenant:{tenant_keys['acme']['tenant_id']}/database" in sources and "database" not in sources
        # Nor does an operator's point land in a tenant's place (as a platform series its staff would
        # never see, that the tenant's own pushes would then write into): refused, nothing stored.
        posing = {"points": [{**spoof["points"][0], "source": "host-ok"},
                             {**spoof["points"][0], "source": f"tenant:{tenant_keys['acme']['tenant_id']}/x"}]}
        refused = post("/api/v2/metrics", posing, operator)
        assert refused.status_code == 400 and json.loads(refused.body)["error"]["fields"][0]["field"] == "points.1.source"
        with context_now().database.transaction() as tx:
            assert tx.fetch_value("SELECT count(*) FROM metric_series WHERE source IN ('host-ok', :posed)",
                                  posed=posing["points"][1]["source"]) == 0
        bad = post("/api/v2/metrics", {"points": [{**batch["points"][0], "value": "high"}]}, operator)
        assert bad.status_code == 400 and json.loads(bad.body)["error"]["fields"][0]["field"] == "points.0.value"
        for field, wrong in (("value", "51"), ("ts", 1700000000)):  # JSON's types: no number in a string
            bad = post("/api/v2/metrics", {"points": [{**batch["points"][0], field: wrong}]}, operator)
            assert bad.status_code == 400 and json.loads(bad.body)["error"]["fields"][0]["field"] == f"points.0.{field}"
        first = json.loads(post("/api/v2/metrics", batch, operator).body)
        again = json.loads(post("/api/v2/metrics", batch, operator).body)
        assert (first["stored"], again["stored"], again["duplicates"]) == (240, 0, 240)  # idempotent

        # The spike arrives; the next scan alerts on it and publishes to the topic.
        spike = {"points": [{"source": "host-x", "metric": "latency_ms", "ts": now.isoformat(), "value": 900.0}]}
        assert post("/api/v2/metrics", spike, operator).status_code == 200
        report = job_named("scan-metrics").run(get_context())
        assert report["new"] == 1 and report["published_incidents"] == 1, report
        messages: list[dict[str, Any]] = []
        for _ in range(6):  # SNS delivers to the queue asynchronously: up to 30 s on a loaded machine
            messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5, MaxNumberOfMessages=10).get("Messages", [])
            if messages:
                break
        body = json.loads(messages[0]["Body"])
        assert body["alerts"][0]["source"] == "host-x" and body["alerts"][0]["score"] >= 0.6

        incidents = json.loads(client.http.get("/api/v2/monitoring/incidents", headers=auth(operator)).body)
        incident = incidents["incidents"][0]
        assert incident["source"] == "host-x" and incident["alerts"][0]["metric"] == "latency_ms"
        # A tenant's staff see their own models' incidents only; clients none.
        mine = json.loads(client.http.get("/api/v2/monitoring/incidents", headers=auth(staff)).body)
        assert mine == {"incidents": []}
        assert client.http.get("/api/v2/monitoring/incidents", headers=auth(client_key)).status_code == 403
        ack = f"/api/v2/monitoring/incidents/{incident['incident_id']}/acknowledge"
        assert client.http.post(ack, headers=auth(staff)).status_code == 404
        bad_ack = client.http.post(ack, headers=auth(operator), body=b'{"x": 1}')
        assert bad_ack.status_code == 400 and json.loads(bad_ack.body)["error"]["fields"][0]["field"] == "x"
        assert json.loads(client.http.get("/api/v2/monitoring/incidents", headers=auth(operator)).body)[
            "incidents"][0]["status"] == "open"  # the refused acknowledgement changed nothing
        acknowledged = json.loads(client.http.post(ack, headers=auth(operator)).body)
        assert acknowledged["status"] == "acknowledged"
        # A retry (here with the empty object) keeps the first acknowledgement, who and when.
        again_ack = json.loads(client.http.post(ack, headers=auth(operator), body=b"{}").body)
        assert (again_ack["acknowledged_at"], again_ack["acknowledged_by"]) == (
            acknowledged["acknowledged_at"], acknowledged["acknowledged_by"])

        silence = {"source": "host-%", "metric": "latency_ms", "minutes": 30, "reason": "deploy"}
        assert post("/api/v2/monitoring/silences", silence, staff).status_code == 403
        created = json.loads(post("/api/v2/monitoring/silences", silence, operator).body)
        listed = json.loads(client.http.get("/api/v2/monitoring/silences", headers=auth(operator)).body)
        assert [s["silence_id"] for s in listed["silences"]] == [created["silence_id"]]

        assert client.http.get("/metrics", headers=auth(staff)).status_code == 403
        exposition = client.http.get("/metrics", headers=auth(operator))
        assert exposition.headers["Content-Type"].startswith("text/plain")
        assert 'mlstack_requests_total{method="POST",route="/api/v2/metrics",status="200"}' in exposition.body.decode()


def test_drift_per_tenant_staff_see_their_own(app_environment: dict[str, str], tenant_keys: dict[str, Any]) -> None:
    from app import app
    from shared.conflict.kind import CONFLICT
    from shared.conflict.outcomes_repository import PREDICTIONS_TABLE, SUBJECT_COLUMNS
    from shared.context import get_context
    from shared.platform.kinds import feature_quantiles
    from shared.platform.prediction_log import PostgresPredictionLog, PredictionRecord
    from shared.slices import job_named

    context = get_context()
    rng = np.random.default_rng(4)
    names = CONFLICT.feature_names

    def rows(n: int, shift: float) -> list[dict[str, float]]:
        return [{"concurrent_editors": float(rng.poisson(2 + shift * 4)), "hours_since_last_sync": float(rng.exponential(5)),
                 "user_conflict_rate": float(rng.beta(2, 8)), "entity_edit_frequency": float(rng.poisson(3)),
                 "field_overlap_score": float(rng.random()), "other_edits_since_sync": float(rng.poisson(1))}
                for _ in range(n)]

    training = CONFLICT.design_matrix(rows(5000, 0.0))
    manifest = {"feature_quantiles": feature_quantiles(training, names), "split": {"train_rows": 5000}}
    log = PostgresPredictionLog(CONFLICT.name, PREDICTIONS_TABLE, SUBJECT_COLUMNS)
    for slug, shift in (("acme", 1.0), ("globex", 0.0)):
        tenant_id = tenant_keys[slug]["tenant_id"]
        version = context.registry.register(kind="conflict", tenant_id=tenant_id, artifact=b"{}", artifact_format="json",
                                            manifest=manifest, actor="test")
        context.registry.activate(version.version_id, actor="test")
        with context.database.transaction() as tx:
            for i, features in enumerate(rows(300, shift)):
                log.append(tx, [PredictionRecord(
                    tenant_id=tenant_id, request_id=f"r{i}",
                    subject={"user_id": "u", "domain": "d", "entity_type": "e", "entity_id": str(i), "fields": []},
                    features=features, probability=0.5, risk_level="low", model_version_id=version.version_id,
                    model_label=version.label, variant="champion", scope="tenant",
                    predicted_at=datetime.now(UTC) - timedelta(hours=1))])
    report = job_named("check-drift").run(context)
    assert {(d["tenant_id"], d["feature"]) for d in report["drifted"]} == {
        (tenant_keys["acme"]["tenant_id"], "concurrent_editors")}
    with local_test_client(app) as client:
        acme = json.loads(client.http.get("/api/v2/monitoring/drift", headers=auth(tenant_keys["acme"]["staff"])).body)
        globex = json.loads(client.http.get("/api/v2/monitoring/drift", headers=auth(tenant_keys["globex"]["staff"])).body)
    assert {r["tenant_id"] for r in acme["reports"]} == {tenant_keys["acme"]["tenant_id"]}
    assert [r["feature"] for r in acme["reports"] if r["drifted"]] == ["concurrent_editors"]
    assert not any(r["drifted"] for r in globex["reports"]) and len(globex["reports"]) == len(names)


def test_collection_retention_and_a_scan_path_without_scikit_learn(
    context: Any, app_environment: dict[str, str],
) -> None:
    from shared.monitoring.collection import collect
    from shared.monitoring.host import HOST_METRICS
    from shared.monitoring.requests import RequestRecorder
    from shared.monitoring.retraining import retrain_state
    from shared.monitoring.scan import compact
    from shared.monitoring.services import monitoring_services
    from shared.monitoring.timings_repository import PostgresTimingsRepository

    services = monitoring_services(context, {"conflict": "conflict_predictions"})
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    clock = [now - timedelta(minutes=1, seconds=-5)]
    recording = RequestRecorder(clock=lambda: clock[0])
    for latency in (10.0, 20.0, 30.0, 400.0):
        recording.record("GET", "/api/v2/models", 200 if latency < 400 else 500, latency)
    clock[0] = now
    assert recording.due() and recording.flush(context.database, PostgresTimingsRepository()) == 1
    collected = collect(services, now)
    assert collect(services, now)["points"] < collected["points"]  # the same minute again: duplicates
    with context.database.transaction() as tx:
        series = {(s["source"], s["metric"]) for s in services.series.series_list(tx)}
    assert {("api", "GET /api/v2/models requests"), ("api", "GET /api/v2/models error_rate"),
            ("database", "connections_active"), ("predictions", "conflict")} <= series
    with context.database.transaction() as tx:
        # The test cluster has no pg_stat_statements: no statement series, the rest still collected.
        assert services.system.slowest_statements(tx, 5) is None
    assert not any(metric.startswith("statement ") for _, metric in series)

    # A host's history: the detector state trains on it (scikit-learn, here) ...
    rng = np.random.default_rng(8)
    points = [Point("host-y", name, now - timedelta(minutes=1500 - m), float(50 + 5 * rng.normal()))
              for m in range(1500) for name in HOST_METRICS]
    with context.database.transaction() as tx:
        services.series.store_points(tx, points)
    assert retrain_state(services, now=now)["promoted"] is True
    # ... and the scan, in a fresh process, scores with it without importing scikit-learn or pandas.
    probe = """
import json, sys
from shared.context import get_context
from shared.slices import job_named
report = job_named('scan-metrics').run(get_context())
print(json.dumps({'state': report['detector_state'],
                  'modules': sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'pandas'))}))
"""
    env = {**os.environ, **app_environment}
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"state": "trained", "modules": []}

    # A state made active by hand (`mlstack models activate`, `rollback`) gets the series' memories
    # against its own profiles at once, as a promotion does, not at the next daily refresh.
    from shared.cli import main as mlstack_cli
    from shared.monitoring.retraining import train_state

    candidate = train_state(services, end=now, days_back=2).version.version_id
    with context.database.transaction() as tx:
        tx.execute("UPDATE metric_precedents SET computed_at = computed_at - interval '1 day'")
    for command in (["models", "activate", candidate], ["models", "rollback", "anomaly"]):
        assert mlstack_cli(command) == 0
        with context.database.transaction() as tx:
            refreshed = tx.fetch_all("SELECT DISTINCT computed_at FROM metric_precedents")
        assert len(refreshed) == 1 and refreshed[0]["computed_at"] > now - timedelta(minutes=5)
        with context.database.transaction() as tx:
            tx.execute("UPDATE metric_precedents SET computed_at = computed_at - interval '1 day'")

    retention = compact(services, now + timedelta(days=services.raw_days, minutes=5))
    assert retention["points_deleted"] > 10_000 and retention["rollups_written"] > 0
    with context.database.transaction() as tx:
        assert services.series.hourly_medians(tx, now - timedelta(days=2), now + timedelta(hours=1))


def test_the_local_schedule_runs_collect_and_scan_and_stops_cleanly_on_sigterm(app_environment: dict[str, str]) -> None:
    import queue
    import signal
    import threading

    env = {**os.environ, **app_environment}
    process = subprocess.Popen([sys.executable, "-m", "shared.cli", "schedule"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        while not any('"schedule.ran"' in line and '"scan-metrics"' in line for line in seen):
            seen.append(lines.get(timeout=60))  # the first round (collect, then scan) runs at the start
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()  # still running: fail with what it printed, not a bare timeout
            process.wait(timeout=10)
    reader.join(timeout=10)  # the rest of its output, up to the end
    while not lines.empty():
        seen.append(lines.get_nowait())
    out = "".join(seen)
    assert process.returncode == 0, out[-3000:]
    ran = [json.loads(line)["job"] for line in out.splitlines() if '"schedule.ran"' in line]
    assert ran == ["collect-metrics", "scan-metrics"]
    runs = json.loads(out[out.index('{\n  "runs"'):])["runs"]
    assert runs == {"collect-metrics": 1, "scan-metrics": 1, "compact-metrics": 0, "check-drift": 0,
                    "refresh-precedents": 0}


def test_refresh_precedents_replaces_each_series_memory_and_the_scan_reads_them_in_one_query(context: Any) -> None:
    from shared.monitoring.precedents import refresh_precedents
    from shared.monitoring.scan import scan
    from shared.monitoring.services import monitoring_services
    from shared.slices import job_named

    services = monitoring_services(context)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rng = np.random.default_rng(5)
    points = [Point(source, metric, now - timedelta(minutes=5 * (600 - k)), float(50 + rng.normal()))
              for source, metric in (("svc-a", "latency_ms"), ("svc-b", "latency_ms"), ("svc-a", "requests_total"))
              for k in range(600)]
    with context.database.transaction() as tx:
        services.series.store_points(tx, points)
    # The counter's total is not scanned (its rate is): no memory for it.
    first = job_named("refresh-precedents").run(context)
    assert first == {"series": 2, "memories": 2, "without_memory": 0,
                     "residuals": "none (no active detector state)"}
    with context.database.transaction() as tx:
        remembered = services.precedents.memories(tx)
    # The schedule rule's hour blocks come back with their times (jsonb keeps them; no new column).
    assert all(m.calendar is not None and m.calendar.keys() == m.events.keys() for m in remembered.values())
    assert refresh_precedents(services, now + timedelta(minutes=5))["memories"] == 2  # again: replaced
    with context.database.transaction() as tx:
        assert services.precedents.memories(tx) == remembered  # no new point: the same memories
        rows = tx.fetch_all("SELECT series_id, computed_at FROM metric_precedents")
    assert len(rows) == 2 and {r["computed_at"] for r in rows} == {now + timedelta(minutes=5)}
    assert scan(services, now + timedelta(minutes=6))["precedent_memories"] == 2
    # A month later nothing is left to remember: the rows go rather than stay stale.
    assert refresh_precedents(services, now + timedelta(days=40))["without_memory"] == 2
    with context.database.transaction() as tx:
        assert services.precedents.memories(tx) == {}


def test_a_flapping_one_minute_series_is_a_low_uptime_alert_in_postgresql(context: Any) -> None:
    """The new alert type is one the database takes, and the series keeps that it is under the bar
    (migration 0022): one alert, not one a scan."""
    from shared.monitoring.scan import scan
    from shared.monitoring.services import monitoring_services

    services = monitoring_services(context)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    source = f"flapping-{uuid.uuid4().hex[:6]}"
    missed = {30, 100, 200, 300, 474}  # the last enters the judged day at the scan 6 minutes later
    points = [Point(source, "cpu_percent", now - timedelta(minutes=480 - m, seconds=-7), 40.0 + m % 3)
              for m in range(481) if m not in missed]
    with context.database.transaction() as tx:
        services.series.store_points(tx, points)
    assert scan(services, now - timedelta(seconds=50))["low_uptime"] == 0
    assert scan(services, now + timedelta(seconds=10))["low_uptime"] == 1
    assert scan(services, now + timedelta(seconds=70))["low_uptime"] == 0
    with context.database.transaction() as tx:
        rows = tx.fetch_all("SELECT alert_type, value FROM monitoring_alerts WHERE source = :source", source=source)
        since = tx.fetch_value("SELECT low_uptime_since FROM metric_series WHERE source = :source", source=source)
    assert [(r["alert_type"], r["value"]) for r in rows] == [("low_uptime", round(470 / 475, 4))]
    assert since == now + timedelta(seconds=10)
