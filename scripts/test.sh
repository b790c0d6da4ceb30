#!/usr/bin/env bash
# The test command: sets up .venv, starts PostgreSQL and LocalStack unless they are already
# reachable, runs the whole suite (unit, integration, end-to-end), stops what it started.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# The dashboards' browser tests (tests/browser) use Debian's Chromium and its driver; nothing is
# downloaded at run time. Installed here when missing (the test command runs as root on CI).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "test: installing chromium and chromium-driver (apt-get)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
fi
exec .venv/bin/python scripts/with_services.py -- .venv/bin/python -m pytest "$@"
