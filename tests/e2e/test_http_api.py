"""The API started as a process (`chalice local`), spoken to over real HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import auth

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def api_url(app_environment: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, **app_environment}
    # A file, not a pipe: nobody reads the server's log while it runs, and a full pipe blocks it.
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "functions.local_gateway", "--host", "127.0.0.1", "--port", str(port),
         "--stage", "local"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if http("GET", f"{base}/health")[0] == 200:
                break
        except OSError:
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail("chalice local did not become healthy: " + (tmp_path / "server.log").read_text()[-2000:])
    yield base
    server.terminate()
    server.wait(timeout=10)
    log.close()


def test_health_key_and_tenant_isolation_over_http(api_url: str, tenant_keys: dict[str, Any]) -> None:
    from shared.context import get_context

    status, body = http("GET", f"{api_url}/health")
    assert status == 200 and body["status"] == "ok"
    assert http("GET", f"{api_url}/api/v2/models")[0] == 401

    acme = tenant_keys["acme"]
    version = get_context().registry.register(
        kind="fraud", tenant_id=acme["tenant_id"], artifact=b"{}", artifact_format="json", manifest={}, actor="t"
    )
    status, body = http("GET", f"{api_url}/api/v2/models/", headers=auth(acme["client"]))
    assert status == 200 and [m["version_id"] for m in body["models"]] == [version.version_id]
    status, body = http("GET", f"{api_url}/api/v2/models/{version.version_id}", headers=auth(tenant_keys["globex"]["client"]))
    assert status == 404 and body["error"]["code"] == "not_found"


def test_bad_request_over_http_is_400_with_fields(api_url: str, tenant_keys: dict[str, Any]) -> None:
    status, body = http("POST", f"{api_url}/api/v2/models/rollback", {"kind": "Not A Kind!"},
                        headers=auth(tenant_keys["acme"]["staff"]))
    assert status == 400
    assert body["error"]["fields"][0]["field"] == "kind"
