"""Sync-event intake and conflict prediction through the handlers (chalice.test.Client)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from functions.local_gateway import local_test_client
from tests.conftest import auth

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(app_environment: dict[str, str]) -> Iterator[Client]:
    from app import app

    with local_test_client(app) as test_client:
        yield test_client


def sync_event(n: int, **overrides: Any) -> dict[str, Any]:
    return {
        "client_event_id": f"ev-{n}", "user_id": "alice", "device_id": "phone-1", "domain": "voice",
        "entity_type": "recording", "entity_id": f"rec-{n % 3}", "fields_changed": ["notes", "title"],
        "received_at": f"2026-11-20T10:{n % 60:02d}:00+00:00", "conflicted": n % 5 == 0,
        "conflict_fields": ["notes"] if n % 5 == 0 else [], **overrides,
    }


def post(client: Client, path: str, key: str, body: Any) -> tuple[int, Any]:
    response = client.http.post(path, headers=auth(key), body=json.dumps(body).encode())
    return response.status_code, json.loads(response.body)


def stored_events() -> int:
    from shared.context import get_context

    with get_context().database.transaction() as tx:
        return int(tx.fetch_value("SELECT count(*) FROM sync_events"))


def test_intake_is_idempotent_on_the_client_event_id(client: Client, tenant_keys: dict[str, Any]) -> None:
    key = tenant_keys["acme"]["client"]
    batch = {"events": [sync_event(n) for n in range(10)]}
    first = post(client, "/api/v2/events/sync", key, batch)
    assert first[0] == 200 and first[1]["accepted"] == 10
    replay = post(client, "/api/v2/events/sync", key, batch)
    assert replay == first
    assert stored_events() == 10
    single = post(client, "/api/v2/events/sync", key, sync_event(3))
    assert single[1]["events"] == [first[1]["events"][3]]


def test_event_ids_are_random_and_the_same_for_a_replay(client: Client, tenant_keys: dict[str, Any]) -> None:
    import uuid

    acme, globex = tenant_keys["acme"]["client"], tenant_keys["globex"]["client"]
    answers = []
    for n in range(3):  # interleaved posts of two tenants: a sequence would count up across them
        answers.append(post(client, "/api/v2/events/sync", acme, sync_event(n))[1]["events"][0]["event_id"])
        answers.append(post(client, "/api/v2/events/sync", globex, sync_event(n))[1]["events"][0]["event_id"])
    assert all(uuid.UUID(event_id).version == 4 for event_id in answers)
    assert len(set(answers)) == 6
    assert post(client, "/api/v2/events/sync", acme, sync_event(1))[1]["events"][0]["event_id"] == answers[2]


def test_a_last_sync_up_to_the_intake_time_is_accepted(client: Client, tenant_keys: dict[str, Any]) -> None:
    from datetime import UTC, timedelta

    just_before = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    status, _ = post(client, "/api/v2/events/sync", tenant_keys["acme"]["client"],
                     sync_event(1, received_at=None, client_last_sync_at=just_before))
    assert status == 200 and stored_events() == 1


def test_the_same_id_from_another_tenant_is_another_event(client: Client, tenant_keys: dict[str, Any]) -> None:
    post(client, "/api/v2/events/sync", tenant_keys["acme"]["client"], sync_event(1))
    status, _ = post(client, "/api/v2/events/sync", tenant_keys["globex"]["client"], sync_event(1))
    assert status == 200 and stored_events() == 2


def test_a_changed_event_under_a_known_id_is_409_and_its_batch_is_not_stored(
    client: Client, tenant_keys: dict[str, Any]
) -> None:
    key = tenant_keys["acme"]["client"]
    post(client, "/api/v2/events/sync", key, sync_event(1))
    status, body = post(client, "/api/v2/events/sync", key,
                        {"events": [sync_event(2), sync_event(1, fields_changed=["tags"])]})
    assert status == 409 and body["error"]["code"] == "conflict"
    assert stored_events() == 1
    # The same fields in another order are the same event (a set): a replay, not a change.
    status, _ = post(client, "/api/v2/events/sync", key, sync_event(1, fields_changed=["title", "notes"]))
    assert status == 200 and stored_events() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": [sync_event(1), sync_event(2, domain="Not Valid")]}, "events.1.domain"),
        ({"events": [sync_event(1, fields_changed=[])]}, "events.0.fields_changed"),
        ({"events": [sync_event(1, conflict_fields=["other"], conflicted=True)]}, "events.0.conflict_fields"),
        ({"events": [sync_event(1, conflict_fields=["notes"])]}, "events.0.conflict_fields"),
        ({"events": [sync_event(1, fields_changed=["notes", "notes"])]}, "events.0.fields_changed"),
        ({"events": [5]}, "events.0"),
        ({"events": [sync_event(1), sync_event(1)]}, "events"),  # the list that repeats an id
        ({"events": [sync_event(n) for n in range(1001)]}, "events"),
        ({"events": [sync_event(1, tenant_id="globex")]}, "events.0.tenant_id"),
        (sync_event(1, received_at="yesterday"), "received_at"),
        # A JSON body is typed as JSON: no "yes" for true, no seconds since 1970 for a time.
        (sync_event(1, conflicted="yes"), "conflicted"),
        ({"events": [sync_event(1, conflicted=1)]}, "events.0.conflicted"),
        (sync_event(1, received_at=1700000000), "received_at"),
        # Outside the plausible range (2000 up to 2100): year 1 would be stored as 1 BC, 9999 at
        # -14:00 as year 10000.
        (sync_event(1, received_at="0001-01-01T00:00:00+14:00"), "received_at"),
        (sync_event(1, received_at="9999-12-31T23:59:59-14:00"), "received_at"),
        (sync_event(1, received_at="2100-01-01T00:00:00+00:00"), "received_at"),
        (sync_event(1, received_at="1999-12-31T23:59:59+00:00"), "received_at"),
        (sync_event(1, client_last_sync_at="2000-01-01T00:30:00+01:00"), "client_last_sync_at"),
        (sync_event(1, client_last_sync_at="2026-11-20T10:05:00+00:00", received_at="2026-11-20T10:04:00+00:00"),
         "client_last_sync_at"),
        # received_at omitted: the intake time is the received_at, and a last sync in the future is refused.
        (sync_event(1, received_at=None, client_last_sync_at="9999-01-01T00:00:00+00:00"), "client_last_sync_at"),
        (sync_event(1, received_at=None, client_last_sync_at="2099-12-31T00:00:00+00:00"), "client_last_sync_at"),
    ],
)
def test_bad_intake_is_400_naming_the_field_and_stores_nothing(
    client: Client, tenant_keys: dict[str, Any], body: Any, field: str
) -> None:
    status, answer = post(client, "/api/v2/events/sync", tenant_keys["acme"]["client"], body)
    assert status == 400
    fields = [f["field"] for f in answer["error"]["fields"]]
    assert field in fields, fields  # the field a rule is about, not the whole body
    assert not any("SyncEvent" in f["reason"] for f in answer["error"]["fields"])  # no class names
    assert stored_events() == 0


def test_prediction_without_a_model_is_the_heuristic_and_is_logged(client: Client, tenant_keys: dict[str, Any]) -> None:
    key = tenant_keys["acme"]["client"]
    post(client, "/api/v2/events/sync", key, {"events": [sync_event(n) for n in range(5)]})
    status, answer = post(client, "/api/v2/predict/conflict/", key,
                          {"domain": "voice", "user_id": "bob", "entity_type": "recording", "entity_id": "rec-1",
                           "fields": ["notes"]})
    assert status == 200
    assert answer["degraded"] is True and answer["model_version"].startswith("heuristic-")
    assert 0 <= answer["probability"] <= 1 and answer["risk_level"] in ("low", "medium", "high")
    assert set(answer["features"]) == {"concurrent_editors", "hours_since_last_sync", "user_conflict_rate",
                                       "entity_edit_frequency", "field_overlap_score", "other_edits_since_sync"}
    response = client.http.get(f"/api/v2/predictions/conflict/{answer['prediction_id']}", headers=auth(key))
    logged = json.loads(response.body)
    assert logged["probability"] == pytest.approx(answer["probability"], abs=1e-6)
    assert logged["variant"] == "heuristic" and logged["features"] == answer["features"]
    assert datetime.fromisoformat(logged["predicted_at"]).tzinfo is not None and "T" in logged["predicted_at"]
    other = client.http.get(f"/api/v2/predictions/conflict/{answer['prediction_id']}",
                            headers=auth(tenant_keys["globex"]["client"]))
    assert other.status_code == 404


def test_every_answered_prediction_is_logged(client: Client, tenant_keys: dict[str, Any]) -> None:
    from shared.context import get_context

    key = tenant_keys["acme"]["client"]
    answered = set()
    for n in range(12):
        status, answer = post(client, "/api/v2/predict/conflict", key,
                              {"domain": "voice", "user_id": f"u{n % 3}", "entity_type": "recording",
                               "entity_id": f"rec-{n}"})
        assert status == 200
        answered.add(answer["prediction_id"])
    with get_context().database.transaction() as tx:
        logged = {str(r["prediction_id"]) for r in tx.fetch_all("SELECT prediction_id FROM conflict_predictions")}
    assert logged == answered


def test_bad_prediction_request_is_400_and_logs_nothing(client: Client, tenant_keys: dict[str, Any]) -> None:
    from shared.context import get_context

    status, answer = post(client, "/api/v2/predict/conflict", tenant_keys["acme"]["client"],
                          {"domain": "voice", "user_id": "bob", "entity_type": "recording"})
    assert status == 400 and answer["error"]["fields"][0]["field"] == "entity_id"
    whole = {"domain": "voice", "user_id": "bob", "entity_type": "recording", "entity_id": "r1"}
    status, answer = post(client, "/api/v2/predict/conflict", tenant_keys["acme"]["client"],
                          {**whole, "client_last_sync_at": 1700000000})
    assert status == 400 and answer["error"]["fields"][0]["field"] == "client_last_sync_at"
    with get_context().database.transaction() as tx:
        assert tx.fetch_value("SELECT count(*) FROM conflict_predictions") == 0


def test_request_path_never_imports_scikit_learn(app_environment: dict[str, str], tenant_keys: dict[str, Any]) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from shared.conflict.demo_data import DemoConfig, generate_sync_history
    from shared.conflict.training import train_candidate
    from shared.context import get_context
    from shared.demo import seed_sync_history

    # A real model is active, so the probe loads, verifies and applies it (not the heuristic).
    context = get_context()
    now = datetime.now(UTC)
    config = replace(DemoConfig(), tenants=("acme",), users_per_tenant=20, entities_per_tenant=80, days=20, end=now)
    seed_sync_history(context, {"acme": tenant_keys["acme"]["tenant_id"]}, generate_sync_history(config))
    trained = train_candidate(context, end=now)
    context.registry.activate(trained.version.version_id, actor="test")
    probe = f"""
import json, sys
from chalice.test import Client

from functions.local_gateway import local_test_client
from app import app
with Client(app) as c:
    r = c.http.post('/api/v2/predict/conflict', headers={{'Authorization': 'Bearer {tenant_keys['acme']['client']}'}},
                    body=json.dumps({{'domain': 'voice', 'user_id': 'bob', 'entity_type': 'recording', 'entity_id': 'x'}}).encode())
    assert r.status_code == 200, r.body
    answer = json.loads(r.body)
    assert answer['degraded'] is False and answer['model_version'] == '{trained.version.label}', answer
print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'pandas', 'scipy')))
"""
    import os

    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**os.environ, **app_environment},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_roles_on_intake(client: Client, tenant_keys: dict[str, Any]) -> None:
    from shared.context import get_context

    service_key = get_context().tenants.create_key(tenant_keys["acme"]["tenant_id"], "service").secret
    assert post(client, "/api/v2/events/sync", service_key, sync_event(1))[0] == 200
    status, body = post(client, "/api/v2/events/sync", tenant_keys["acme"]["staff"], sync_event(2))
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert stored_events() == 1


def test_a_field_named_null_is_a_name_through_every_intake_path(
    client: Client, tenant_keys: dict[str, Any], tmp_path: Path
) -> None:
    from shared.conflict.ingest import ingest_sync_events
    from shared.context import get_context

    event = sync_event(7, fields_changed=["NULL", "notes"], conflicted=True, conflict_fields=["NULL"])
    (tmp_path / "events.ndjson").write_text(json.dumps(event) + "\n")
    result = ingest_sync_events(get_context(), tenant_keys["acme"]["tenant_id"], tmp_path / "events.ndjson")
    assert result["stored"] == 1
    # The same event again through the API is a replay, not a changed event.
    status, _ = post(client, "/api/v2/events/sync", tenant_keys["acme"]["client"], event)
    assert status == 200
    with get_context().database.transaction() as tx:
        assert tx.fetch_value("SELECT fields_changed FROM sync_events") == ["NULL", "notes"]


def test_ndjson_import_reports_each_bad_line(app_environment: dict[str, str], tenant_keys: dict[str, Any],
                                             tmp_path: Path) -> None:
    from shared.conflict.ingest import ingest_sync_events
    from shared.context import get_context
    from shared.errors import InvalidInput

    lines = [json.dumps(sync_event(1)), "42", "{not json", json.dumps(sync_event(2, received_at=None)),
             json.dumps(sync_event(3))]
    (tmp_path / "events.ndjson").write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInput) as refused:
        ingest_sync_events(get_context(), tenant_keys["acme"]["tenant_id"], tmp_path / "events.ndjson")
    assert [f.field for f in refused.value.fields] == ["line 2", "line 3", "line 4"]
    assert "received_at is required" in refused.value.fields[2].reason
    assert stored_events() == 0
