#!/usr/bin/env python3
"""The run command's body: embedded PostgreSQL, a local-folder object store, migrations, a demo
tenant, then `chalice local` (functions/local_gateway.py) on http://127.0.0.1:8000. State lives in .mlstack/ and is reused by
the next run; Ctrl-C stops everything this started.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import localpg  # noqa: E402

STATE = ROOT / ".mlstack"
PG_DATA = STATE / "postgres"
OBJECTS = STATE / "objects"
SIGNING_KEY_FILE = STATE / "signing.key"
ENV_FILE = STATE / "local.env"
AGENT_KEY_FILE = STATE / "agent.key"
DEFAULT_PG_PORT = 54329


def _write_private(path: Path, text: str) -> None:
    """Created 0600 from the start: never readable by others, not even for a moment."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _signing_key() -> str:
    if not SIGNING_KEY_FILE.exists():
        _write_private(SIGNING_KEY_FILE, secrets.token_hex(32))
    return SIGNING_KEY_FILE.read_text().strip()


def _pg_port() -> int:
    recorded = PG_DATA / "port"
    if recorded.exists():
        return int(recorded.read_text())
    return DEFAULT_PG_PORT if not localpg.port_is_open(DEFAULT_PG_PORT) else localpg.free_port()


def prepare_environment() -> dict[str, str]:
    STATE.mkdir(exist_ok=True)
    database_url = localpg.start(PG_DATA, _pg_port(), fast=False)
    env = {
        "MLSTACK_DATABASE_URL": database_url,
        "MLSTACK_OBJECT_STORE_URL": f"file://{OBJECTS}",
        "MLSTACK_SIGNING_KEY": _signing_key(),
        "MLSTACK_STAGE": "local",
        "MLSTACK_LOG_LEVEL": os.environ.get("MLSTACK_LOG_LEVEL", "INFO"),
    }
    _write_private(ENV_FILE, "".join(f"{k}={v}\n" for k, v in env.items()))
    os.environ.update(env)
    return env


def seed_demo(args: argparse.Namespace) -> None:
    """Migrations, the demo tenant and its keys (printed once, when first created)."""
    from shared.context import get_context
    from shared.demo import ensure_demo

    context = get_context()
    report = ensure_demo(context, with_models=not args.no_models)
    for line in report:
        print(line, flush=True)


def agent_key() -> str:
    """An operator key on the `platform` tenant for the local agent, created once, kept 0600."""
    if AGENT_KEY_FILE.exists():
        return AGENT_KEY_FILE.read_text().strip()
    from shared.context import get_context
    from shared.errors import NotFound

    directory = get_context().tenants
    try:
        tenant = directory.find_tenant("platform")
    except NotFound:
        tenant = directory.create_tenant("platform", "Platform (operators)")
    secret = directory.create_key(tenant.tenant_id, "operator", "local agent").secret
    _write_private(AGENT_KEY_FILE, secret)
    return secret


def start_agent(port: int) -> subprocess.Popen[bytes]:
    """`mlstack agent` pushing this machine's psutil readings to the local API every 60 s."""
    # The key not in argv (ps would show it); on the run's terminal only the agent's warnings and errors.
    env = {**os.environ, "MLSTACK_AGENT_KEY": agent_key(), "MLSTACK_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "shared.cli", "agent", "--url", f"http://127.0.0.1:{port}"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def start_schedule() -> subprocess.Popen[bytes]:
    """`mlstack schedule`: collect-metrics and scan-metrics every minute, check-drift,
    compact-metrics and refresh-precedents daily, as EventBridge runs them deployed (its log lines go
    to .mlstack/schedule.log)."""
    log = (STATE / "schedule.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "shared.cli", "schedule"], cwd=ROOT, stdout=log, stderr=log)


def port_taken(port: int) -> bool:
    """Whether the server's bind of 127.0.0.1:port would fail (a listener there or on any address)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def taken_message(port: int) -> str:
    return f"mlstack: port {port} is taken: use --port N (e.g. scripts/run.sh --port {localpg.free_port()})"


def serving(server: subprocess.Popen[bytes], port: int, wait_seconds: float = 120.0) -> bool:
    """Whether the server came up listening on the port: False as soon as it exits (its bind
    failed), or if it never listens. Checked before anything that sends the operator key starts."""
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        if localpg.port_is_open(port):
            return server.poll() is None
        time.sleep(0.2)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # SIGTERM: the agent and the schedule stop between two runs
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-models", action="store_true", help="skip demo data and model training")
    parser.add_argument("--prepare-only", action="store_true", help="set up state, do not serve")
    args = parser.parse_args()

    # A SIGTERM (service managers, test harnesses) stops as cleanly as Ctrl-C; and Ctrl-C (SIGINT)
    # stops it even when a script started it in the background, where SIGINT arrives ignored (the
    # API, agent and schedule would inherit that and outlive a kill -INT of the group).
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Before anything starts: the agent would push the operator key to whatever holds the port.
    if not args.prepare_only and port_taken(args.port):
        print(taken_message(args.port), file=sys.stderr, flush=True)
        return 1
    prepare_environment()
    try:
        seed_demo(args)
        if args.prepare_only:
            return 0
        return serve(args.port, demo=not args.no_models)
    finally:
        localpg.stop(PG_DATA)
        print("mlstack: stopped PostgreSQL", flush=True)


def _print_hints(port: int, demo: bool) -> None:
    print(f"mlstack: serving on http://127.0.0.1:{port} (Ctrl-C stops it and PostgreSQL)", flush=True)
    print(
        f"mlstack: try  curl -s -X POST http://127.0.0.1:{port}/api/v2/predict/conflict/"
        " -H 'Authorization: Bearer <client key>' -H 'Content-Type: application/json'"
        """ -d '{"domain": "voice", "user_id": "demo-user-015", "entity_type": "recording","""
        """ "entity_id": "rec-00029", "fields": ["notes"]}'""",
        flush=True,
    )
    if demo:  # the OCR and fraud examples name the demo's readings and sites (--no-models has none)
        _print_demo_hints(port)
    print(f"mlstack: the CLI with these settings: .venv/bin/mlstack --env-file {ENV_FILE} --help", flush=True)
    print("mlstack: the agent pushes this host's readings every 60 s (operator key in .mlstack/agent.key);"
          " collect-metrics and scan-metrics run every minute, check-drift and refresh-precedents daily"
          " (log: .mlstack/schedule.log);"
          " incidents: .venv/bin/mlstack --env-file .mlstack/local.env alerts incidents", flush=True)
    print(f"mlstack: dashboards: http://127.0.0.1:{port}/dashboards — sign in with the demo staff key for"
          " the OCR, conflict and fraud pages, and with the operator key in .mlstack/agent.key for monitoring",
          flush=True)


def _print_demo_hints(port: int) -> None:
    print(
        f"mlstack: an OCR correction: curl -s -X POST http://127.0.0.1:{port}/api/v2/ml-training/corrections/"
        " -H 'Authorization: Bearer <client key>' -H 'Content-Type: application/json'"
        """ -d '{"source_type": "meter_reading", "source_id": "demo-m0-3", "corrected_text": "00123.4","""
        """ "correction_type": "OCR_ERROR"}'""",
        flush=True,
    )
    print(
        f"mlstack: a fraud score: curl -s -X POST http://127.0.0.1:{port}/api/v2/predict/fraud/"
        " -H 'Authorization: Bearer <client key>' -H 'Content-Type: application/json'"
        """ -d '{"client_event_id": "demo-u0-checkin", "user_id": "demo-u0", "site_id": "demo-site-0","""
        """ "device_id": "someone-elses-phone", "event_type": "check_in", "occurred_at": "'"$(date -u +%FT%TZ)"'","""
        """ "latitude": null, "longitude": null, "gps_accuracy_m": null, "face_match_confidence": 0.31,"""
        """ "biometric_verified": false}'""",
        flush=True,
    )


def serve(port: int, demo: bool = True) -> int:
    """The API, then (once it listens on the port) the hints, the agent and the schedule, until the
    API ends or Ctrl-C; stops what it started."""
    if port_taken(port):  # again: the seeding took a while
        print(taken_message(port), file=sys.stderr, flush=True)
        return 1
    # `chalice local` with API Gateway's gateway responses (401/403/404/503 in the error shape).
    server = subprocess.Popen(
        [sys.executable, "-m", "functions.local_gateway", "--host", "127.0.0.1", "--port", str(port),
         "--stage", "local"],
        cwd=ROOT,
    )
    helpers: list[subprocess.Popen[bytes]] = []
    try:
        if not serving(server, port):
            print(taken_message(port) if port_taken(port) and server.poll() is not None
                  else "mlstack: the API did not start (its error is above)", file=sys.stderr, flush=True)
            return 1
        _print_hints(port, demo)
        helpers += [start_agent(port), start_schedule()]
        while True:
            # In one-second slices: the kernel may hand the SIGTERM to another thread (the demo's
            # training left OpenBLAS workers); a blocking wait would sleep on through it.
            try:
                return server.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        return 0
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        for helper in reversed(helpers):
            _stop(helper)


if __name__ == "__main__":
    raise SystemExit(main())
