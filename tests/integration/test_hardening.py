"""Defects found by probing the API from outside, each answered in the one error shape."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
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


def assert_error_shape(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.body
    body = json.loads(response.body)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}, body
    assert body["error"]["code"] == code, body
    assert response.headers.get("X-Request-Id"), response.headers
    return body["error"]


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]


def test_a_key_check_with_the_database_down_is_a_logged_503_with_retry_after(
    client: Client, tenant_keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from shared.adapters.db import Database
    from shared.context import get_context
    from shared.platform.tenants_repository import TenantDirectory

    monkeypatch.setattr(get_context(), "tenants", TenantDirectory(Database("postgresql://x@127.0.0.1:1/none")))
    capsys.readouterr()
    response = client.http.get("/api/v2/models", headers=auth(tenant_keys["acme"]["client"]))
    assert_error_shape(response, 503, "dependency_unavailable")
    assert response.headers["Retry-After"] == "5"
    lines = log_lines(capsys)
    assert any(line.get("event") == "auth.unavailable" for line in lines), lines
    request = [line for line in lines if line.get("event") == "request"]
    assert request and request[-1]["status"] == 503
    assert request[-1]["request_id"] == response.headers["X-Request-Id"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b'{"reason": ' + b"[" * 17 + b"]" * 17 + b"}", "nested too deeply"),
        (b'{"reason": ' + b"9" * 5_000 + b"}", "not JSON"),
        (b'{"reason": NaN}', "not JSON"),
        (b'{"reason": 1e999}', "not JSON"),
    ],
    ids=["100k-brackets", "depth-18", "5000-digits", "nan", "infinite"],
)
def test_hostile_json_is_a_400_not_a_500(client: Client, tenant_keys: dict[str, Any], body: bytes, reason: str) -> None:
    response = client.http.post("/api/v2/models/rollback", headers=auth(tenant_keys["acme"]["staff"]), body=body)
    error = assert_error_shape(response, 400, "invalid_input")
    assert reason in error["message"], error
    assert error["fields"][0]["field"] == "body"


def test_every_refusal_has_the_error_shape_and_a_request_id(client: Client, tenant_keys: dict[str, Any]) -> None:
    key = tenant_keys["acme"]["client"]
    assert_error_shape(client.http.get("/api/v2/models"), 401, "unauthenticated")
    assert_error_shape(client.http.get("/api/v2/models", headers=auth("mlk_unknown")), 403, "forbidden")
    denied = client.http.post("/api/v2/models/rollback", headers=auth(key), body=b'{"kind": "fraud"}')
    assert_error_shape(denied, 403, "forbidden")
    not_allowed = client.http.delete("/api/v2/models", headers=auth(key))
    assert_error_shape(not_allowed, 405, "method_not_allowed")
    assert "GET" in not_allowed.headers["Allow"]
    media = client.http.post("/api/v2/predict/conflict", headers={**auth(key), "Content-Type": "text/plain"},
                             body=b"x")
    assert_error_shape(media, 415, "unsupported_media_type")
    assert_error_shape(client.http.get("/api/v2/nothing-here", headers=auth(key)), 404, "not_found")
    assert_error_shape(client.http.get("/nothing-here"), 404, "not_found")


@pytest.mark.parametrize("form", ["urn:uuid:{}", "{{{}}}", "{}-", "{}0"])
def test_ids_python_parses_but_postgres_does_not_are_404(
    client: Client, tenant_keys: dict[str, Any], form: str
) -> None:
    from shared.context import get_context

    acme = tenant_keys["acme"]
    version = get_context().registry.register(
        kind="fraud", tenant_id=acme["tenant_id"], artifact=b"{}", artifact_format="json", manifest={}, actor="t"
    )
    assert client.http.get(f"/api/v2/models/{version.version_id}", headers=auth(acme["client"])).status_code == 200
    odd = form.format(version.version_id)
    for path in (f"/api/v2/models/{odd}", f"/api/v2/predictions/conflict/{odd}"):
        assert_error_shape(client.http.get(path, headers=auth(acme["client"])), 404, "not_found")
    assert_error_shape(client.http.post(f"/api/v2/models/{odd}/activate", headers=auth(acme["staff"]), body=b"{}"),
                       404, "not_found")


def test_only_postgres_uuid_forms_are_ids() -> None:
    from shared.adapters.db import is_uuid

    value = uuid.uuid4()
    assert is_uuid(str(value)) and is_uuid(value.hex) and is_uuid(str(value).upper())
    for odd in (f"urn:uuid:{value}", f"{{{value}}}", f"{value}\n", f"{str(value)[:8]}{str(value)[9:]}", ""):
        assert not is_uuid(odd), odd


def _conflict_model(context: Any, tenant_id: str | None) -> Any:
    import numpy as np

    from shared.conflict.model import FEATURE_NAMES, LinearConflictModel

    n = len(FEATURE_NAMES)
    model = LinearConflictModel(FEATURE_NAMES, np.zeros(n), np.ones(n), np.full(n, 0.1), -1.0)
    version = context.registry.register(kind="conflict", tenant_id=tenant_id, artifact=model.to_artifact(),
                                        artifact_format="json", manifest={}, actor="test")
    context.registry.activate(version.version_id, actor="test")
    return version


PREDICT = b'{"domain": "voice", "user_id": "u1", "entity_type": "recording", "entity_id": "r1"}'


def test_a_warm_function_stops_serving_a_tampered_artifact_and_health_says_so(
    client: Client, tenant_keys: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.context import get_context

    context, acme = get_context(), tenant_keys["acme"]
    own, shared = _conflict_model(context, acme["tenant_id"]), _conflict_model(context, None)
    first = json.loads(client.http.post("/api/v2/predict/conflict", headers=auth(acme["client"]), body=PREDICT).body)
    assert first["scope"] == "tenant" and first["model_version"] == own.label
    # The object in S3 replaced behind the registry's back (the test settings refresh at once).
    context.object_store.put(own.artifact_key, context.object_store.get(own.artifact_key).replace(b"-1.0", b"9.0"))
    capsys.readouterr()
    second = json.loads(client.http.post("/api/v2/predict/conflict", headers=auth(acme["client"]), body=PREDICT).body)
    assert second["scope"] == "global" and second["model_version"] == shared.label
    assert any(line.get("event") == "security.artifact_rejected" and line["version_id"] == own.version_id
               for line in log_lines(capsys))
    health = client.http.get("/health")
    assert health.status_code == 503
    assert json.loads(health.body)["checks"]["model_artifacts"] == {
        "ok": False, "rejected": [{"kind": "conflict", "scope": "tenant"}]}


def test_activate_takes_no_body_as_the_readme_says(client: Client, tenant_keys: dict[str, Any]) -> None:
    from shared.context import get_context

    acme = tenant_keys["acme"]
    version = get_context().registry.register(
        kind="fraud", tenant_id=acme["tenant_id"], artifact=b"{}", artifact_format="json", manifest={}, actor="t"
    )
    response = client.http.post(f"/api/v2/models/{version.version_id}/activate", headers=auth(acme["staff"]))
    assert response.status_code == 200 and json.loads(response.body)["status"] == "active"


def test_the_local_gateway_reads_no_more_than_the_limit_of_a_huge_body(
    app_environment: dict[str, str], tenant_keys: dict[str, Any]
) -> None:
    """A Content-Length of 1 GB is answered 400 after reading one byte past the 2 MiB limit."""
    import io

    from app import app
    from functions.http import MAX_BODY_BYTES
    from functions.local_gateway import wsgi_app

    class Stream(io.BytesIO):
        asked: list[int] = []

        def read(self, size: int | None = -1) -> bytes:
            self.asked.append(-1 if size is None else size)
            return b"{" * (size if size and size > 0 else 0)

    with local_test_client(app) as test_client:
        config = test_client.http._config
    statuses: list[str] = []
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v2/events/sync", "CONTENT_LENGTH": str(10**9),
               "CONTENT_TYPE": "application/json", "HTTP_AUTHORIZATION": f"Bearer {tenant_keys['acme']['client']}",
               "wsgi.input": Stream()}
    body = b"".join(wsgi_app(app, config)(environ, lambda status, headers: statuses.append(status)))
    assert statuses == ["400 Bad Request"] and b"too large" in body
    assert Stream.asked == [MAX_BODY_BYTES + 1]


def test_a_write_rolled_back_for_a_concurrent_one_is_run_again_and_a_second_collision_is_a_503(
        client: Client, tenant_keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL ends one of two transactions that lock the same rows in other orders (40P01):
    nothing of it was written, so the route runs it again (up to 3 times) instead of answering 500."""
    import functions.api_monitoring as api_monitoring
    import functions.http as http
    from shared.context import get_context
    from shared.errors import TransientConflict

    real = api_monitoring.store_metrics
    collisions = {"left": 1}

    def colliding(*args: Any, **kwargs: Any) -> Any:
        if collisions["left"]:
            collisions["left"] -= 1
            raise TransientConflict("rolled back for a concurrent transaction (40P01): deadlock detected")
        return real(*args, **kwargs)

    monkeypatch.setattr(api_monitoring, "store_metrics", colliding)
    pauses: list[float] = []
    monkeypatch.setattr(http, "time", SimpleNamespace(sleep=pauses.append, perf_counter=time.perf_counter))
    monkeypatch.setattr(http, "random", SimpleNamespace(uniform=lambda low, high: high))  # the longest pause
    service = get_context().tenants.create_key(tenant_keys["acme"]["tenant_id"], "service").secret
    point = {"source": "app", "metric": "queue_depth", "ts": "2026-11-30T12:00:00+00:00", "value": 3.0}
    stored = client.http.post("/api/v2/metrics", headers=auth(service), body=json.dumps({"points": [point]}))
    assert stored.status_code == 200 and json.loads(stored.body)["stored"] == 1
    # A random pause before the second attempt (up to 50 ms), so colliding requests do not meet again.
    assert pauses == [http.RETRY_PAUSE_SECONDS]
    collisions["left"] = 3  # every attempt collides
    again = client.http.post("/api/v2/metrics", headers=auth(service),
                             body=json.dumps({"points": [{**point, "metric": "other"}]}))
    body = assert_error_shape(again, 503, "concurrent_update")
    assert again.headers["Retry-After"] == "5" and body["fields"] == []
    assert pauses[1:] == [http.RETRY_PAUSE_SECONDS, 2 * http.RETRY_PAUSE_SECONDS]  # up to twice as long the next time
