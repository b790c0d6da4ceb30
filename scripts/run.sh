#!/usr/bin/env bash
# The run command: sets up .venv, then serves the API on http://127.0.0.1:8000 with embedded
# PostgreSQL, a local-folder object store and a demo tenant (state in .mlstack/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python scripts/run_local.py "$@"
