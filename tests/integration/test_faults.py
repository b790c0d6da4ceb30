"""Faults injected under the running API: PostgreSQL stopped mid-load, the object store unreachable,
a stalled database. The API answers 503 in the error shape (never a hang, a closed connection or a
500), loses no acknowledged write, and recovers without a restart."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from functions.local_gateway import local_test_client
from tests.conftest import auth

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("localpg", ROOT / "scripts" / "localpg.py")
assert _spec and _spec.loader
localpg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(localpg)


def http(method: str, url: str, body: bytes | None = None, key: str | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def pg_ctl_immediate_stop(data: Path) -> None:
    """Like a crash: backends are killed, no shutdown checkpoint; the restart replays the WAL."""
    subprocess.run([*localpg._as_server_user(), str(localpg.postgres_bin_dir() / "pg_ctl"), "-D",
                    str(data.resolve() / "cluster"), "-m", "immediate", "-w", "stop"],
                   check=True, stdout=subprocess.DEVNULL)


@pytest.fixture
def own_postgres() -> Iterator[tuple[Path, int, str]]:
    """A durable cluster of this test's own (the suite's is fsync=off): it is stopped and restarted.
    Outside pytest's temporary root: another pytest of the same user resets that root to mode 700,
    and the server's user could then no longer reach its cluster."""
    data, port = Path(tempfile.mkdtemp(prefix="mlstack-faults-pg-")), localpg.free_port()
    try:
        url = localpg.start(data, port, fast=False)
        yield data, port, url
    finally:
        localpg.stop(data)
        shutil.rmtree(data, ignore_errors=True)


def test_postgres_stopped_mid_load_only_503s_no_acknowledged_write_lost_and_health_recovers(
    own_postgres: tuple[Path, int, str], settings_env: dict[str, str], tmp_path: Path
) -> None:
    from shared.adapters.db import Database
    from shared.adapters.migrate import migrate
    from shared.platform.tenants_repository import TenantDirectory

    data, port, url = own_postgres
    database = Database(url)
    migrate(database)
    tenants = TenantDirectory(database)
    tenant = tenants.create_tenant("acme", "Acme")
    key = tenants.create_key(tenant.tenant_id, "client").secret
    api_port = localpg.free_port()
    env = {**os.environ, **settings_env, "MLSTACK_DATABASE_URL": url}
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "functions.local_gateway", "--port", str(api_port)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{api_port}"
    try:
        for _ in range(300):
            try:
                if http("GET", f"{base}/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        acknowledged: list[str] = []
        answers: Counter[int] = Counter()
        refusals: list[tuple[dict[str, str], Any]] = []
        stop = threading.Event()
        lock = threading.Lock()

        def writer(worker: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                event_id = f"w{worker}-{n}"
                body = json.dumps({"client_event_id": event_id, "user_id": "u1", "device_id": "d1",
                                   "domain": "voice", "entity_type": "recording", "entity_id": f"r{n % 7}",
                                   "fields_changed": ["notes"]}).encode()
                status, headers, answer = http("POST", f"{base}/api/v2/events/sync", body, key)
                with lock:
                    answers[status] += 1
                    if status == 200:
                        acknowledged.append(event_id)
                    else:
                        refusals.append((headers, answer))

        def wait_for(condition: Any) -> None:
            for _ in range(600):
                if condition():
                    return
                time.sleep(0.1)
            raise AssertionError(f"timed out; answers so far {dict(answers)}")

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: len(acknowledged) >= 50)
            pg_ctl_immediate_stop(data)
            down_from = sum(answers.values())
            wait_for(lambda: sum(answers.values()) - down_from >= 40)
            status, _, health = http("GET", f"{base}/health")
            assert status == 503 and health["checks"]["database"]["ok"] is False
            localpg.start(data, port, fast=False)
            wait_for(lambda: http("GET", f"{base}/health")[0] == 200)
            acked_before = len(acknowledged)
            wait_for(lambda: len(acknowledged) >= acked_before + 50)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert server.poll() is None  # the same process throughout: no restart
        assert set(answers) == {200, 503}, dict(answers)
        for headers, answer in refusals:
            assert answer["error"]["code"] == "dependency_unavailable" and headers.get("Retry-After") == "5"
            assert headers.get("X-Request-Id")
        with database.transaction() as tx:
            stored = {row["client_event_id"] for row in tx.fetch_all(
                "SELECT client_event_id FROM sync_events WHERE tenant_id = CAST(:t AS uuid)", t=tenant.tenant_id)}
        assert set(acknowledged) <= stored, f"{len(set(acknowledged) - stored)} acknowledged writes lost"
        print(f"faults: postgres stop: answers {dict(answers)}, {len(acknowledged)} acknowledged, 0 lost")
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
        database.close()


@pytest.fixture
def client(app_environment: dict[str, str]) -> Iterator[Client]:
    from app import app

    with local_test_client(app) as test_client:
        yield test_client


PREDICT = b'{"domain": "voice", "user_id": "u1", "entity_type": "recording", "entity_id": "r1"}'


def test_object_store_unreachable_warm_models_keep_serving_cold_ones_degrade_health_503(
    client: Client, tenant_keys: dict[str, Any]
) -> None:
    import boto3
    import botocore.config

    from shared.context import get_context
    from tests.integration.test_hardening import _conflict_model

    context, acme = get_context(), tenant_keys["acme"]
    shared = _conflict_model(context, None)
    warm = json.loads(client.http.post("/api/v2/predict/conflict", headers=auth(acme["client"]), body=PREDICT).body)
    assert warm["model_version"] == shared.label
    own = _conflict_model(context, acme["tenant_id"])  # activated, never loaded: cold
    unreachable = boto3.client("s3", endpoint_url="http://127.0.0.1:1", region_name="us-east-1",
                               config=botocore.config.Config(connect_timeout=1, retries={"max_attempts": 1}))
    context.object_store._client = unreachable  # type: ignore[attr-defined]
    answer = client.http.post("/api/v2/predict/conflict", headers=auth(acme["client"]), body=PREDICT)
    assert answer.status_code == 200
    body = json.loads(answer.body)
    assert body["model_version"] == shared.label and body["scope"] == "global", body  # own: cold, unfetchable
    assert own.label != body["model_version"]
    health = client.http.get("/health")
    assert health.status_code == 503
    checks = json.loads(health.body)["checks"]
    assert checks["object_store"]["ok"] is False and checks["model_artifacts"]["ok"] is True


def test_a_stalled_database_is_a_503_not_a_hang(
    client: Client, tenant_keys: dict[str, Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.adapters.db import Database
    from shared.context import get_context

    monkeypatch.setattr(get_context(), "database", Database(database_url, statement_timeout=0.5))
    blocker = Database(database_url)
    try:
        blocker.run_outside_transaction("BEGIN")
        blocker.run_outside_transaction("LOCK TABLE sync_events IN ACCESS EXCLUSIVE MODE")
        body = json.dumps({"client_event_id": "e1", "user_id": "u1", "device_id": "d1", "domain": "voice",
                           "entity_type": "recording", "entity_id": "r1", "fields_changed": ["notes"]}).encode()
        response = client.http.post("/api/v2/events/sync", headers=auth(tenant_keys["acme"]["client"]), body=body)
        assert response.status_code == 503
        assert json.loads(response.body)["error"]["code"] == "dependency_unavailable"
        assert response.headers["Retry-After"] == "5"
    finally:
        blocker.run_outside_transaction("ROLLBACK")
        blocker.close()
        get_context().database.close()
