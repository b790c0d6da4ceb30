"""The dashboards' JSON and pages in-process against the real PostgreSQL: each route's role, tenant
isolation, the numbers the pages draw (live ROC-AUC per day, calibration, false-positive rate,
downsampled series, anomalies with their surroundings, alerts that fired together), and pages that
carry no data and need no key."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.local_gateway import local_test_client
from shared.platform.metrics import brier_score, roc_auc
from tests.conftest import auth

pytestmark = pytest.mark.integration


def _get(client: Any, path: str, key: str | None = None) -> tuple[int, Any]:
    response = client.http.get(path, headers=auth(key) if key else {})
    body = response.body.decode() if isinstance(response.body, bytes) else response.body
    is_json = response.headers.get("Content-Type", "").startswith("application/json")
    return response.status_code, json.loads(body) if is_json else body


def _operator() -> str:
    from shared.context import get_context

    _, keys = get_context().tenants.create_tenant_with_keys("platform", "Platform", ("operator",))
    return keys[0].secret


def _log_conflict_predictions(tenant_id: str, now: datetime) -> list[tuple[int, float, bool]]:
    """40 labelled predictions over two days and 5 pending: (day offset, probability, outcome)."""
    from shared.context import get_context

    rows = [(d, (n + 1) / 21, n % 4 == 0 or n > 16) for d in (1, 2) for n in range(20)]
    with get_context().database.transaction() as tx:
        for day, p, outcome in [*rows, *((0, 0.5, None),) * 5]:
            tx.execute(
                "INSERT INTO conflict_predictions (tenant_id, request_id, user_id, domain, entity_type, entity_id,"
                " features, probability, risk_level, model_label, variant, predicted_at, outcome)"
                " VALUES (CAST(:t AS uuid), 'r', 'u', 'voice', 'recording', 'e', '{}', :p, :risk, 'conflict-v1',"
                " 'champion', :at, :outcome)",
                t=tenant_id, p=p, risk="high" if p >= 0.5 else "low", at=now - timedelta(days=day, hours=1),
                outcome=outcome)
    return rows


def test_conflict_dashboard_numbers_roles_and_tenant_isolation(
        app_environment: dict[str, str], tenant_keys: dict[str, Any]) -> None:
    from app import app

    now = datetime.now(UTC)
    rows = _log_conflict_predictions(tenant_keys["acme"]["tenant_id"], now)
    with local_test_client(app) as client:
        status, data = _get(client, "/api/v2/conflict/dashboard", tenant_keys["acme"]["staff"])
        assert status == 200
        day_one = [r for r in rows if r[0] == 1]
        first = next(d for d in data["live_by_day"] if d["day"] == (now - timedelta(days=1, hours=1)).date().isoformat())
        assert first["predictions"] == 20 and first["model_label"] == "conflict-v1"
        assert first["roc_auc"] == pytest.approx(roc_auc([r[2] for r in day_one], [r[1] for r in day_one]), abs=1e-4)
        assert first["brier"] == pytest.approx(brier_score([r[2] for r in day_one], [r[1] for r in day_one]), abs=1e-4)
        assert sum(d["predictions"] for d in data["predictions_by_risk"]) == 45
        assert sum(d["pending"] for d in data["outcomes_by_day"]) == 5
        assert [d["decile"] for d in data["calibration"]] == list(range(1, 11))
        # Deciles ordered by predicted probability, observed rates from the outcomes.
        predicted = [d["predicted"] for d in data["calibration"]]
        assert predicted == sorted(predicted) and data["calibration"][-1]["observed"] == 1.0

        assert _get(client, "/api/v2/conflict/dashboard", tenant_keys["globex"]["staff"])[1]["live_by_day"] == []
        assert _get(client, "/api/v2/conflict/dashboard", tenant_keys["acme"]["client"])[0] == 403

        # A global version serves both tenants; its stored live figures pool them. Each tenant's staff
        # see the figures of their own predictions only, and a shadow's scores are not answers.
        from shared.conflict.services import conflict_services
        from shared.context import get_context

        context = get_context()
        version = context.registry.register(kind="conflict", tenant_id=None, artifact=b"{}", artifact_format="json",
                                            manifest={}, actor="test")
        assert version.label == "conflict-v1"
        with context.database.transaction() as tx:
            tx.execute("INSERT INTO conflict_predictions (tenant_id, request_id, user_id, domain, entity_type,"
                       " entity_id, features, probability, risk_level, model_label, variant, predicted_at, outcome)"
                       " SELECT CAST(:t AS uuid), 'r', 'u', 'voice', 'recording', 'e', '{}', 0.9, 'high',"
                       " 'conflict-v1', 'shadow', :at, true FROM generate_series(1, 3)",
                       t=tenant_keys["acme"]["tenant_id"], at=now - timedelta(hours=2))
            pooled = conflict_services(context).log.store_live_metrics(tx, now)
        assert {m["predictions"] for m in pooled if m["window_days"] == 30} == {43}
        acme = _get(client, "/api/v2/conflict/dashboard", tenant_keys["acme"]["staff"])[1]
        globex = _get(client, "/api/v2/conflict/dashboard", tenant_keys["globex"]["staff"])[1]
        shown = {v["label"]: v["live_metrics"] for v in acme["versions"]}
        assert shown["conflict-v1"]["30d"]["predictions"] == 43
        assert [v["live_metrics"] for v in globex["versions"]] == [{}]  # nothing of acme's
        assert sum(d["predictions"] for d in acme["predictions_by_risk"]) == 45  # the 3 shadow rows left out
        assert _get(client, "/api/v2/conflict/dashboard")[0] == 401


def test_fraud_activity_and_ocr_dashboard_for_staff_only(
        app_environment: dict[str, str], tenant_keys: dict[str, Any]) -> None:
    from app import app
    from shared.context import get_context
    from shared.fraud.features import FEATURE_NAMES

    acme, now = tenant_keys["acme"], datetime.now(UTC)
    features = json.dumps({name: 0.0 for name in FEATURE_NAMES})
    with get_context().database.transaction() as tx:
        for n, (p, outcome) in enumerate([(0.95, True), (0.9, False), (0.2, False), (0.1, False), (0.97, None)]):
            tx.execute(
                "INSERT INTO fraud_predictions (tenant_id, request_id, client_event_id, user_id, site_id, occurred_at,"
                " features, probability, risk_level, model_label, variant, scope, predicted_at, outcome)"
                " VALUES (CAST(:t AS uuid), 'r', :e, 'u1', 's1', :at, CAST(:f AS jsonb), :p, 'high', 'fraud-rules-v1',"
                " 'heuristic', 'heuristic', :at, :outcome)",
                t=acme["tenant_id"], e=f"ev-{n}", at=now - timedelta(hours=2), f=features, p=p, outcome=outcome)
    with local_test_client(app) as client:
        status, activity = _get(client, "/api/v2/fraud/activity", acme["staff"])
        assert status == 200
        review = activity["review_threshold"]
        day = activity["false_positive_rate_by_day"][-1]
        negatives = [0.9, 0.2, 0.1]  # the scores whose outcome is "legitimate"
        assert day["false_positives"] == sum(1 for p in negatives if p >= review)
        assert day["false_positive_rate"] == pytest.approx(day["false_positives"] / len(negatives), abs=1e-4)
        assert sorted(h["fraud_score"] for h in activity["high_scores"]) == sorted(
            p for p in (0.95, 0.9, 0.2, 0.1, 0.97) if p >= review)
        assert all("reasons" in h for h in activity["high_scores"])
        assert _get(client, "/api/v2/fraud/activity", tenant_keys["globex"]["staff"])[1]["high_scores"] == []
        assert _get(client, "/api/v2/fraud/activity", acme["client"])[0] == 403

        status, ocr = _get(client, "/api/v2/ocr/dashboard?target_share=0.5", acme["staff"])
        assert status == 200
        assert ocr["latest_labelling_batch"] is None and ocr["threshold"]["target_share"] == 0.5
        assert ocr["current_threshold"]["source"] == "heuristic"
        assert _get(client, "/api/v2/ocr/dashboard?target_share=2", acme["staff"])[0] == 400
        assert _get(client, "/api/v2/ocr/dashboard", acme["client"])[0] == 403


def test_monitoring_dashboard_series_anomalies_and_what_fired_together(
        app_environment: dict[str, str], tenant_keys: dict[str, Any]) -> None:
    from app import app
    from shared.context import get_context
    from shared.monitoring.demo_repository import seed_series
    from shared.monitoring.scan import scan
    from shared.monitoring.services import monitoring_services

    operator = _operator()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    spike = now - timedelta(hours=3)
    services = monitoring_services(get_context())
    with services.transactions.transaction() as tx:
        for source, metric in (("host-a", "cpu_percent"), ("api", "p95_latency_ms")):
            seed_series(tx, source, metric, now - timedelta(days=2), now, base=40, daily=10, noise=2, spikes=[spike],
                        height=300, minutes=5)
        # An hour of the last day lost on one host (an agent down), outside the spike's hours.
        tx.execute("DELETE FROM metric_points p USING metric_series s WHERE s.series_id = p.series_id"
                   " AND s.source = 'host-a' AND p.ts >= :start AND p.ts < :end",
                   start=now - timedelta(hours=10), end=now - timedelta(hours=9))
    scan(services, now=now)
    with local_test_client(app) as client:
        status, series = _get(client, "/api/v2/monitoring/series?source=host-a&metric=cpu_percent&days=2&points=100",
                              operator)
        assert status == 200
        assert len(series["t"]) <= 100 and series["raw_points"] >= 2 * 1440 - 60 - 5  # but the lost hour; the window ends at the request
        assert all(lo <= mean <= hi for lo, mean, hi in zip(series["min"], series["mean"], series["max"], strict=True))
        assert max(series["max"]) > 300  # the spike survives downsampling (max per bucket)

        status, board = _get(client, "/api/v2/monitoring/dashboard?days=2", operator)
        assert status == 200
        assert {(s["source"], s["metric"]) for s in board["health"]["series"]} >= {("host-a", "cpu_percent"),
                                                                                 ("api", "p95_latency_ms")}
        shares = {s["source"]: s["reported_share"] for s in board["health"]["series"]
                  if s["source"] in ("host-a", "api")}
        assert shares["api"] >= 0.998  # every minute of the day (the last may be after the seeded end)
        assert abs(shares["host-a"] - (shares["api"] - 60 / 1440)) < 0.002  # the lost hour of 24
        assert board["health"]["reported_window_hours"] == 24
        anomaly = next(a for a in board["anomalies"] if a["source"] == "host-a")
        assert len(anomaly["points"]["t"]) >= 240  # two hours either side, one point a minute
        assert max(anomaly["points"]["value"]) > 300
        pair = next(p for p in board["fired_together"] if {p["first"], p["second"]} ==
                    {"host-a cpu_percent", "api p95_latency_ms"})
        assert pair["together"] >= 1 and 0 < pair["share"] <= 1

        for key in (tenant_keys["acme"]["staff"], tenant_keys["acme"]["client"]):
            assert _get(client, "/api/v2/monitoring/dashboard", key)[0] == 403
            assert _get(client, "/api/v2/monitoring/series?source=host-a&metric=cpu_percent", key)[0] == 403
        assert _get(client, "/api/v2/monitoring/series", operator)[0] == 400
        assert _get(client, "/api/v2/monitoring/series?source=host-a&metric=cpu_prcent", operator)[0] == 404


def test_pages_and_assets_are_public_and_carry_no_data(app_environment: dict[str, str]) -> None:
    from app import app

    with local_test_client(app) as client:
        for page in ("", "/ocr", "/conflict", "/fraud", "/monitoring"):
            response = client.http.get(f"/dashboards{page}")
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith("text/html")
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
            body = response.body.decode()
            assert 'src="/dashboards/static/uplot.js"' in body and "mlk_" not in body
        script = client.http.get("/dashboards/static/uplot.js")
        assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")
        assert len(script.body) > 40_000
        status, error = _get(client, "/dashboards/static/..%2F..%2Fapp.py")
        assert status == 404 and error["error"]["code"] == "not_found"
