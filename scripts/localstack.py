#!/usr/bin/env python3
"""LocalStack without Docker: its own Python 3.13 virtual environment, started in the background.

    python scripts/localstack.py start    # reuses one already answering on :4566 (e.g. Docker's)
    python scripts/localstack.py stop     # stops only a LocalStack this script started
    python scripts/localstack.py status

State (venv, pid, log, data) lives in .mlstack/localstack/ of the project.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("MLSTACK_LOCALSTACK_HOME", ROOT / ".mlstack" / "localstack"))
PORT = int(os.environ.get("MLSTACK_LOCALSTACK_PORT", "4566"))
HEALTH_URL = f"http://127.0.0.1:{PORT}/_localstack/health"
# Verified together on this kind of machine (the open-source LocalStack is archived at 2026.3.0).
PINS = [
    "localstack-core[runtime]==2026.3.0",
    "cbor2==5.8.0",
    "cryptography==46.0.5",
    "pyopenssl==25.3.0",
    "localstack-twisted==25.5.0",
]
SERVICES = "s3,sqs,secretsmanager,events,scheduler,ssm,cloudwatch,logs,iam,sts,cloudformation,sns,lambda"


def healthy() -> bool:
    try:
        with urllib.request.urlopen(HEALTH_URL, timeout=1) as response:
            return response.status == 200 and bool(json.load(response).get("services"))
    except (OSError, ValueError):
        return False


def python313() -> list[str]:
    # pyenv's shims answer `which` even when that version is not selected, so try each for real.
    candidates = [["python3.13"], ["env", "PYENV_VERSION=3.13.0", "pyenv", "exec", "python"]]
    for candidate in candidates:
        if shutil.which(candidate[0]) and subprocess.run(
            [*candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 13)"],
            capture_output=True, check=False,
        ).returncode == 0:
            return candidate
    sys.exit("LocalStack needs Python 3.13 (python3.13 on PATH, or pyenv with 3.13.0)")


def ensure_venv() -> Path:
    venv = STATE / "venv"
    stamp = venv / ".pins"
    wanted = hashlib.sha256("\n".join(PINS).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    STATE.mkdir(parents=True, exist_ok=True)
    subprocess.run([*python313(), "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *PINS],
                   check=True)
    stamp.write_text(wanted)
    return venv


def start(timeout: float = 90.0) -> str:
    if healthy():
        return "already-running"
    venv = ensure_venv()
    data = STATE / "data"
    data.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GATEWAY_LISTEN": f"127.0.0.1:{PORT}",
        "DISABLE_EVENTS": "1",
        "SKIP_INFRA_DOWNLOADS": "1",
        "FILESYSTEM_ROOT": str(data),
        "SERVICES": SERVICES,
        "LOCALSTACK_CLI": "0",
    }
    with open(STATE / "localstack.log", "ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [str(venv / "bin" / "python"), "-m", "localstack.runtime.main"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    (STATE / "pid").write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"LocalStack exited early; see {STATE / 'localstack.log'}")
        if healthy():
            return "started"
        time.sleep(0.5)
    stop()
    sys.exit(f"LocalStack not healthy after {timeout:.0f} s; see {STATE / 'localstack.log'}")


def _is_our_localstack(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"localstack.runtime.main" in command


def stop() -> None:
    pid_file = STATE / "pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    if not _is_our_localstack(pid):  # a stale pid file: that process is someone else's now
        pid_file.unlink(missing_ok=True)
        return
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(100):
            _reap(pid)
            if not _is_our_localstack(pid):  # ended (an unreaped child has no command line left)
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)
    pid_file.unlink(missing_ok=True)


def _reap(pid: int) -> None:
    """Collect the process's exit if it is this process's child (with_services starts it)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # someone else's child, or already collected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "status", "install"])
    args = parser.parse_args()
    if args.command == "start":
        print(start())
    elif args.command == "stop":
        stop()
    elif args.command == "install":
        print(ensure_venv())
    else:
        print("healthy" if healthy() else "down")
        return 0 if healthy() else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
