"""Handlers in-process through chalice.test.Client, against real PostgreSQL and LocalStack S3."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from functions.local_gateway import local_test_client
from tests.conftest import auth

pytestmark = pytest.mark.integration


@pytest.fixture
def client(app_environment: dict[str, str]) -> Iterator[Client]:
    from app import app

    with local_test_client(app) as test_client:
        yield test_client


def _register_tenant_model(tenant_id: str | None, kind: str = "fraud") -> Any:
    from shared.context import get_context

    return get_context().registry.register(
        kind=kind, tenant_id=tenant_id, artifact=b"{}", artifact_format="json", manifest={}, actor="test"
    )


def test_health_needs_no_key_and_reports_dependencies(client: Client) -> None:
    response = client.http.get("/health")
    assert response.status_code == 200
    body = json.loads(response.body)
    assert body["checks"]["database"]["ok"] and body["checks"]["object_store"]["ok"]
    assert "active_models" in body


def test_health_is_503_when_the_database_is_down(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.context import get_context

    context = get_context()
    context.database.close()
    monkeypatch.setattr(context, "database", type(context.database)("postgresql://x@127.0.0.1:1/none"))
    response = client.http.get("/health")
    assert response.status_code == 503
    assert json.loads(response.body)["checks"]["database"]["ok"] is False


def test_requests_without_a_key_get_401(client: Client) -> None:
    assert client.http.get("/api/v2/models/").status_code == 401


def test_unknown_and_revoked_keys_are_refused(client: Client, tenant_keys: dict[str, Any]) -> None:
    from shared.context import get_context

    assert client.http.get("/api/v2/models/", headers=auth("mlk_not-a-real-key")).status_code == 403
    key = tenant_keys["acme"]["client"]
    assert client.http.get("/api/v2/models/", headers=auth(key)).status_code == 200
    directory = get_context().tenants
    for row in directory.list_keys(tenant_keys["acme"]["tenant_id"]):
        if key.startswith(row["key_prefix"]):
            directory.revoke_key(str(row["key_id"]))
    assert client.http.get("/api/v2/models/", headers=auth(key)).status_code == 403


def test_another_tenants_model_is_404(client: Client, tenant_keys: dict[str, Any]) -> None:
    acme_model = _register_tenant_model(tenant_keys["acme"]["tenant_id"])
    own = client.http.get(f"/api/v2/models/{acme_model.version_id}", headers=auth(tenant_keys["acme"]["client"]))
    assert own.status_code == 200
    other = client.http.get(f"/api/v2/models/{acme_model.version_id}", headers=auth(tenant_keys["globex"]["client"]))
    assert other.status_code == 404
    assert json.loads(other.body)["error"]["code"] == "not_found"
    listed = json.loads(client.http.get("/api/v2/models/", headers=auth(tenant_keys["globex"]["client"])).body)
    assert listed["models"] == []


def test_malformed_ids_are_404_not_500(client: Client, tenant_keys: dict[str, Any]) -> None:
    response = client.http.get("/api/v2/models/not-a-uuid", headers=auth(tenant_keys["acme"]["client"]))
    assert response.status_code == 404
    # An id of 60 KB is not echoed back whole.
    huge = client.http.get("/api/v2/models/" + "x" * 60_000, headers=auth(tenant_keys["acme"]["client"]))
    message = json.loads(huge.body)["error"]["message"]
    assert huge.status_code == 404 and len(message) <= 300 and message.endswith("…")


def test_staff_activate_their_own_model_clients_may_not(client: Client, tenant_keys: dict[str, Any]) -> None:
    version = _register_tenant_model(tenant_keys["acme"]["tenant_id"])
    path = f"/api/v2/models/{version.version_id}/activate"
    denied = client.http.post(path, headers=auth(tenant_keys["acme"]["client"]), body=b"{}")
    assert denied.status_code == 403
    foreign = client.http.post(path, headers=auth(tenant_keys["globex"]["staff"]), body=b"{}")
    assert foreign.status_code == 404
    done = client.http.post(path, headers=auth(tenant_keys["acme"]["staff"]), body=b'{"reason": "better"}')
    assert done.status_code == 200
    assert json.loads(done.body)["status"] == "active"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"reason": "x", "tenant_id": "someone-else"}', "tenant_id"),
        (b'{"reason": ' + b'"' + b"x" * 600 + b'"}', "reason"),
        (b"not json", "body"),
        (b"[1, 2]", "body"),
    ],
)
def test_bad_body_is_400_naming_the_field_and_changes_nothing(
    client: Client, tenant_keys: dict[str, Any], body: bytes, field: str
) -> None:
    version = _register_tenant_model(tenant_keys["acme"]["tenant_id"])
    response = client.http.post(
        f"/api/v2/models/{version.version_id}/activate", headers=auth(tenant_keys["acme"]["staff"]), body=body
    )
    assert response.status_code == 400
    error = json.loads(response.body)["error"]
    assert error["code"] == "invalid_input"
    assert any(f["field"] == field for f in error["fields"]), error
    from shared.context import get_context

    assert get_context().registry.get(version.version_id).status == "candidate"


def test_every_response_carries_a_request_id_and_is_logged(
    client: Client, tenant_keys: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    response = client.http.get("/api/v2/models/", headers=auth(tenant_keys["acme"]["client"]))
    assert response.headers.get("X-Request-Id")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    request_lines = [line for line in lines if line.get("event") == "request"]
    assert request_lines, lines
    last = request_lines[-1]
    assert last["tenant_id"] == tenant_keys["acme"]["tenant_id"]
    assert last["status"] == 200 and last["route"] == "/api/v2/models" and last["latency_ms"] >= 0


def test_scheduled_job_runs_through_its_handler(client: Client) -> None:
    from shared.context import get_context

    version = _register_tenant_model(None, kind="conflict")
    get_context().registry.activate(version.version_id, actor="test")
    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )
    result = client.lambda_.invoke("verify_active_models", event)
    assert result.payload == {"checked": 1, "failed": []}
    # A shadow in use with its bytes swapped fails the run (the job's errors alarm counts it).
    from shared.errors import ArtifactRejected
    from shared.platform.maintenance import verify_active_models

    context = get_context()
    shadow = _register_tenant_model(None, kind="conflict")
    context.registry.set_shadow(shadow.version_id, True, actor="test")
    context.object_store.put(shadow.artifact_key, b'{"tampered": true}')
    with pytest.raises(ArtifactRejected, match=f"1 of 2 artifacts in use failed: {shadow.label}"):
        verify_active_models(context)


def test_health_is_503_with_a_clear_reason_before_migrations(
    client: Client, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    from shared.adapters.db import Database
    from shared.context import get_context

    name = f"empty_{uuid.uuid4().hex[:8]}"
    admin = Database(database_url)
    admin.run_outside_transaction(f'CREATE DATABASE "{name}"')
    try:
        context = get_context()
        monkeypatch.setattr(context, "database", Database(database_url.rsplit("/", 1)[0] + f"/{name}"))
        response = client.http.get("/health")
        assert response.status_code == 503
        assert "mlstack db migrate" in json.loads(response.body)["checks"]["database"]["error"]
        context.database.close()
    finally:
        admin.run_outside_transaction(f'DROP DATABASE "{name}"')
        admin.close()


def test_a_value_postgres_cannot_store_is_400_and_changes_nothing(client: Client, tenant_keys: dict[str, Any]) -> None:
    version = _register_tenant_model(tenant_keys["acme"]["tenant_id"])
    response = client.http.post(f"/api/v2/models/{version.version_id}/activate",
                                headers=auth(tenant_keys["acme"]["staff"]), body=b'{"reason": "nul \\u0000 here"}')
    assert response.status_code == 400
    from shared.context import get_context

    assert get_context().registry.get(version.version_id).status == "candidate"


def test_staff_roll_back_over_http(client: Client, tenant_keys: dict[str, Any]) -> None:
    acme = tenant_keys["acme"]
    first, second = _register_tenant_model(acme["tenant_id"]), _register_tenant_model(acme["tenant_id"])
    for version in (first, second):
        assert client.http.post(f"/api/v2/models/{version.version_id}/activate", headers=auth(acme["staff"]),
                                body=b"{}").status_code == 200
    response = client.http.post("/api/v2/models/rollback", headers=auth(acme["staff"]), body=b'{"kind": "fraud"}')
    assert response.status_code == 200 and json.loads(response.body)["version_id"] == first.version_id
    foreign = client.http.post("/api/v2/models/rollback", headers=auth(tenant_keys["globex"]["staff"]),
                               body=b'{"kind": "fraud"}')
    assert foreign.status_code == 409  # globex has nothing active: acme's versions are not its own
    for kind in ("nonexistent", "anomaly"):  # no such kind; the platform's detectors are the operator's
        refused = client.http.post("/api/v2/models/rollback", headers=auth(acme["staff"]),
                                   body=json.dumps({"kind": kind}).encode())
        assert refused.status_code == 400 and json.loads(refused.body)["error"]["fields"][0]["field"] == "kind"


def test_the_request_id_header_is_the_logged_one(
    client: Client, tenant_keys: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    response = client.http.get("/api/v2/models", headers=auth(tenant_keys["acme"]["client"]))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    logged = [line["request_id"] for line in lines if line.get("event") == "request"]
    assert logged[-1] == response.headers["X-Request-Id"]


def test_an_operator_key_has_no_tenant_data(client: Client, tenant_keys: dict[str, Any]) -> None:
    """The operator key is platform-wide: tenant routes refuse it, nothing is logged under it."""
    from shared.context import get_context

    directory = get_context().tenants
    _, (operator,) = directory.create_tenant_with_keys("platform", "Platform", ("operator",))
    predict = {"domain": "voice", "user_id": "u1", "entity_type": "recording", "entity_id": "r1"}
    refused = [
        client.http.post("/api/v2/predict/conflict", headers=auth(operator.secret), body=json.dumps(predict)),
        client.http.post("/api/v2/predict/fraud", headers=auth(operator.secret), body=json.dumps({"client_event_id": "e"})),
        client.http.post("/api/v2/ml-training/corrections", headers=auth(operator.secret), body=json.dumps({})),
        client.http.get("/api/v2/models", headers=auth(operator.secret)),
        client.http.get(f"/api/v2/models/{_register_tenant_model(None).version_id}", headers=auth(operator.secret)),
        client.http.get("/api/v2/predictions/conflict/00000000-0000-0000-0000-000000000000",
                        headers=auth(operator.secret)),
        client.http.get("/api/v2/predictions/fraud/00000000-0000-0000-0000-000000000000",
                        headers=auth(operator.secret)),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert "client or staff or service" in json.loads(refused[0].body)["error"]["message"]
    with get_context().database.transaction() as tx:
        assert tx.fetch_value("SELECT count(*) FROM conflict_predictions") == 0
    # A tenant's own keys still reach the same routes.
    assert client.http.get("/api/v2/models", headers=auth(tenant_keys["acme"]["client"])).status_code == 200


def test_a_query_parameter_a_route_does_not_read_is_400(client: Client, tenant_keys: dict[str, Any]) -> None:
    staff = auth(tenant_keys["acme"]["staff"])
    for path in ("/api/v2/conflict/dashboard", "/api/v2/fraud/activity", "/api/v2/fraud/dashboard",
                 "/api/v2/monitoring/drift"):
        response = client.http.get(f"{path}?dasy=7", headers=staff)
        assert response.status_code == 400, path
        assert json.loads(response.body)["error"]["fields"] == [
            {"field": "query.dasy", "reason": "this route takes no query parameters"}]
        assert client.http.get(path, headers=staff).status_code == 200, path
    # Routes that read a query still take theirs and name an unknown one.
    assert client.http.get("/api/v2/models?kind=conflict", headers=staff).status_code == 200
    assert client.http.get("/api/v2/models?knd=conflict", headers=staff).status_code == 400
    twice = client.http.get("/api/v2/models?kind=conflict&kind=fraud", headers=staff)
    assert twice.status_code == 400 and json.loads(twice.body)["error"]["fields"] == [
        {"field": "query.kind", "reason": "given more than once"}]


def test_the_public_health_names_no_internals_of_a_failure(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.context import get_context
    from shared.errors import DependencyUnavailable

    def lost() -> list[str]:
        raise DependencyUnavailable("database unavailable (57P01): terminating connection of db-7.internal")

    monkeypatch.setattr(get_context().registry, "active_kinds", lost)
    response = client.http.get("/health")
    assert response.status_code == 503
    assert json.loads(response.body)["checks"]["database"] == {"ok": False, "error": "dependency_unavailable"}


def test_a_tenant_sees_a_global_versions_quality_not_the_pooled_data_nor_the_platforms_models(
        client: Client, tenant_keys: dict[str, Any]) -> None:
    from shared.context import get_context

    registry = get_context().registry
    manifest = {"metrics": {"roc_auc": 0.91, "rows": 6377, "positives": 169}, "split": {"train_rows": 81234},
                "feature_quantiles": {"x": [0, 1]}, "training_window": {"start": "2026-08-01"}}
    conflict = registry.register(kind="conflict", tenant_id=None, artifact=b"{}", artifact_format="json",
                                 manifest=manifest, actor="test")
    anomaly = registry.register(kind="anomaly", tenant_id=None, artifact=b"{}", artifact_format="json",
                                manifest={"series_profiles": {"db-7.internal cpu": {}}}, actor="test")
    staff = auth(tenant_keys["acme"]["staff"])
    listed = json.loads(client.http.get("/api/v2/models", headers=staff).body)["models"]
    assert [(m["kind"], m["manifest"]) for m in listed] == [("conflict", {"metrics": {"roc_auc": 0.91}})]
    assert client.http.get(f"/api/v2/models/{anomaly.version_id}", headers=staff).status_code == 404
    shown = json.loads(client.http.get(f"/api/v2/models/{conflict.version_id}", headers=staff).body)
    assert shown["manifest"] == {"metrics": {"roc_auc": 0.91}}
    # A tenant's own version shows its whole manifest: its own data.
    own = registry.register(kind="conflict", tenant_id=tenant_keys["acme"]["tenant_id"], artifact=b"{}",
                            artifact_format="json", manifest=manifest, actor="test")
    assert json.loads(client.http.get(f"/api/v2/models/{own.version_id}", headers=staff).body)["manifest"] == manifest
