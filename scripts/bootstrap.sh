#!/usr/bin/env bash
# Create or refresh the project's Python 3.12 virtual environment (.venv) from pyproject.toml.
# Re-runs pip only when pyproject.toml or constraints.txt changed since the last time.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python312() {
  # pyenv's shims answer `command -v` even when that version is not selected: run each for real.
  if python3.12 -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
    echo "python3.12"; return
  fi
  if command -v pyenv >/dev/null 2>&1 && PYENV_VERSION=3.12.1 pyenv exec python -V >/dev/null 2>&1; then
    echo "pyenv"; return
  fi
  echo "mlstack needs Python 3.12 (python3.12 on PATH, or pyenv with 3.12.1)" >&2
  exit 1
}

stamp_value=$(cat pyproject.toml constraints.txt 2>/dev/null | sha256sum | cut -c1-64)
if [ -x .venv/bin/python ] && [ "$(cat .venv/.mlstack-stamp 2>/dev/null)" = "$stamp_value" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  py=$(find_python312)
  echo "bootstrap: creating .venv with Python 3.12" >&2
  if [ "$py" = "pyenv" ]; then PYENV_VERSION=3.12.1 pyenv exec python -m venv .venv; else "$py" -m venv .venv; fi
fi
echo "bootstrap: installing pinned packages into .venv (first time takes a few minutes)" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[serving,training,dev,agent]"
echo "$stamp_value" > .venv/.mlstack-stamp
