#!/usr/bin/env python3
"""Run a command with a real PostgreSQL and LocalStack, starting them unless already reachable,
and stopping afterwards only what this script started.

    python scripts/with_services.py -- pytest -q

Exports MLSTACK_TEST_DATABASE_URL and MLSTACK_TEST_AWS_ENDPOINT_URL to the command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import localpg  # noqa: E402
import localstack  # noqa: E402


def _database_reachable(url: str) -> bool:
    parsed = urlparse(url)
    return localpg.port_is_open(parsed.port or 5432, parsed.hostname or "127.0.0.1")


def main(argv: list[str]) -> int:
    if "--" not in argv:
        sys.exit("usage: with_services.py -- COMMAND [ARGS...]")
    command = argv[argv.index("--") + 1 :]
    env = dict(os.environ)
    cleanups = []
    try:
        url = env.get("MLSTACK_TEST_DATABASE_URL", "")
        if url and _database_reachable(url):
            print(f"services: using PostgreSQL at {url}", file=sys.stderr)
        else:
            data = Path(tempfile.mkdtemp(prefix="mlstack-pg-"))
            url = localpg.start(data, localpg.free_port(), fast=True)
            cleanups.append(lambda: (localpg.stop(data), shutil.rmtree(data, ignore_errors=True)))
            print(f"services: started PostgreSQL at {url}", file=sys.stderr)
        env["MLSTACK_TEST_DATABASE_URL"] = url

        state = localstack.start()
        if state == "started":
            cleanups.append(localstack.stop)
        print(f"services: LocalStack {state} on port {localstack.PORT}", file=sys.stderr)
        env["MLSTACK_TEST_AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{localstack.PORT}"

        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 130
    finally:
        for cleanup in reversed(cleanups):
            cleanup()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
