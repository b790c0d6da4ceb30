"""The run command when its port is taken: one clear line, and nothing started, above all not the
agent, which would push the operator key to whatever listens there."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def run_local() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_local_under_test", ROOT / "scripts" / "run_local.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_taken_port_ends_the_run_with_one_line_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        state_before = (ROOT / ".mlstack").exists()
        result = subprocess.run([sys.executable, "scripts/run_local.py", "--port", str(port), "--no-models"],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        taken.settimeout(0.5)
        try:
            taken.accept()[0].close()
            contacted = True
        except TimeoutError:
            contacted = False
    assert result.returncode == 1 and result.stdout == "", result
    assert result.stderr.startswith(f"mlstack: port {port} is taken: use --port N")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not contacted  # nothing knocked on the port, let alone with a key
    assert (ROOT / ".mlstack").exists() == state_before  # no PostgreSQL, no state written


def test_the_server_counts_as_serving_only_once_it_listens_and_never_after_it_ended() -> None:
    module = run_local()
    failed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])  # as a server whose bind failed
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert module.serving(failed, port, wait_seconds=30) is False
    assert not module.port_taken(port)
    listening = subprocess.Popen([sys.executable, "-c", (
        "import socket, sys, time\n"
        "time.sleep(0.5)\n"  # a while to import and bind, as the gateway takes
        f"s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port}))\n"
        "s.listen(); time.sleep(60)")])
    try:
        assert module.serving(listening, port, wait_seconds=30) is True
        assert module.port_taken(port)
    finally:
        listening.kill()
        listening.wait()
