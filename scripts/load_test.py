#!/usr/bin/env python3
"""Bounded mixed load against the API served locally, on 127.0.0.1 only.

    .venv/bin/python scripts/load_test.py [--duration 20] [--threads 8]

Starts its own PostgreSQL (default durability) in a temporary folder, a local-folder object store,
a tenant with a client key and an active global conflict model, and the API
(functions/local_gateway.py); then THREADS workers send a mix for DURATION seconds (at most 60):
60 % predictions, 30 % sync-event posts, 5 % model lists, 5 % /health. Prints p50/p99 per route,
throughput and errors as JSON, then as a table; stops everything it started.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import localpg  # noqa: E402

HOST = "127.0.0.1"  # never anywhere else
MIX = (("predict", 0.60), ("sync", 0.30), ("models", 0.05), ("health", 0.05))


def _request(base: str, route: str, key: str, n: int) -> tuple[str, str, bytes | None]:
    if route == "predict":
        body = {"domain": "voice", "user_id": f"u{n % 50}", "entity_type": "recording", "entity_id": f"r{n % 200}",
                "fields": ["notes"]}
        return "POST", f"{base}/api/v2/predict/conflict", json.dumps(body).encode()
    if route == "sync":
        body = {"client_event_id": f"load-{secrets.token_hex(8)}", "user_id": f"u{n % 50}", "device_id": "d1",
                "domain": "voice", "entity_type": "recording", "entity_id": f"r{n % 200}",
                "fields_changed": ["notes"]}
        return "POST", f"{base}/api/v2/events/sync", json.dumps(body).encode()
    if route == "models":
        return "GET", f"{base}/api/v2/models", None
    return "GET", f"{base}/health", None


def _call(method: str, url: str, body: bytes | None, key: str) -> int:
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0  # no answer at all


class _KeepAlive:
    """One persistent connection per worker, as a real client keeps: the local server then keeps
    one thread, and so one database connection, per client (as a warm Lambda keeps its own)."""

    def __init__(self, base: str, key: str) -> None:
        self._host, self._port = base.removeprefix("http://").split(":")
        self._key = key
        self._connection: http.client.HTTPConnection | None = None

    def call(self, method: str, url: str, body: bytes | None) -> int:
        path = "/" + url.split("/", 3)[3]
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self._host, int(self._port), timeout=30)
            try:
                self._connection.request(method, path, body=body, headers={
                    "Authorization": f"Bearer {self._key}", "Content-Type": "application/json"})
                response = self._connection.getresponse()
                response.read()
                return response.status
            except (OSError, http.client.HTTPException):
                self._connection.close()
                self._connection = None
                if attempt == 2:
                    return 0  # no answer at all
        return 0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else 0.0


def run_load(base: str, key: str, duration: float, threads: int) -> dict[str, Any]:
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def worker(seed: int) -> None:
        rng, n, client = random.Random(seed), 0, _KeepAlive(base, key)
        routes, weights = zip(*MIX, strict=True)
        while time.monotonic() < deadline:
            n += 1
            route = rng.choices(routes, weights)[0]
            method, url, body = _request(base, route, key, n + seed * 1000)
            started = time.perf_counter()
            status = client.call(method, url, body)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies[route].append(elapsed)
                if status != 200:
                    errors[f"{route} {status}"] += 1

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    wall = time.monotonic() - started
    every = [v for values in latencies.values() for v in values]
    return {
        "duration_s": round(wall, 1), "threads": threads, "requests": len(every),
        "throughput_rps": round(len(every) / wall, 1), "errors": dict(errors),
        "p50_ms": _percentile(every, 0.50), "p99_ms": _percentile(every, 0.99),
        "routes": {route: {"requests": len(values), "p50_ms": _percentile(values, 0.50),
                           "p99_ms": _percentile(values, 0.99)} for route, values in sorted(latencies.items())},
    }


def _prepare(url: str, objects: Path) -> tuple[dict[str, str], str]:
    env = {"MLSTACK_DATABASE_URL": url, "MLSTACK_OBJECT_STORE_URL": f"file://{objects}",
           "MLSTACK_SIGNING_KEY": secrets.token_hex(32), "MLSTACK_LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    import numpy as np

    from shared.adapters.migrate import migrate
    from shared.conflict.model import FEATURE_NAMES, LinearConflictModel
    from shared.context import get_context

    context = get_context()
    migrate(context.database)
    tenant = context.tenants.create_tenant("load", "Load")
    key = context.tenants.create_key(tenant.tenant_id, "client").secret
    n = len(FEATURE_NAMES)
    model = LinearConflictModel(FEATURE_NAMES, np.zeros(n), np.ones(n), np.full(n, 0.2), -2.0)
    version = context.registry.register(kind="conflict", tenant_id=None, artifact=model.to_artifact(),
                                        artifact_format="json", manifest={}, actor="load_test")
    context.registry.activate(version.version_id, actor="load_test")
    context.database.close()
    return env, key


def _table(result: dict[str, Any]) -> str:
    lines = ["| route | requests | p50 ms | p99 ms |", "| --- | --- | --- | --- |"]
    for route, row in result["routes"].items():
        lines.append(f"| {route} | {row['requests']} | {row['p50_ms']} | {row['p99_ms']} |")
    lines.append(f"| **all** | {result['requests']} | {result['p50_ms']} | {result['p99_ms']} |")
    lines.append(f"\n{result['throughput_rps']} requests/s over {result['duration_s']} s with {result['threads']}"
                 f" threads; errors: {result['errors'] or 'none'}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (at most 60)")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    duration = min(max(args.duration, 1.0), 60.0)
    work = Path(tempfile.mkdtemp(prefix="mlstack-load-"))
    data, server = work / "pg", None
    try:
        url = localpg.start(data, localpg.free_port(), fast=False)
        env, key = _prepare(url, work / "objects")
        port = localpg.free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "functions.local_gateway", "--host", HOST, "--port", str(port)],
            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        base = f"http://{HOST}:{port}"
        for _ in range(300):
            if _call("GET", f"{base}/health", None, key) == 200:
                break
            time.sleep(0.1)
        result = run_load(base, key, duration, args.threads)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        localpg.stop(data)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    print(_table(result))
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
