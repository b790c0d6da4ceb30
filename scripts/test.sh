#!/usr/bin/env bash
# The test command: sets up .venv, starts PostgreSQL and LocalStack unless they are already
# reachable, runs the whole suite (unit, integration, end-to-end), stops what it started.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python scripts/with_services.py -- .venv/bin/python -m pytest "$@"
