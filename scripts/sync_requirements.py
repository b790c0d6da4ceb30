#!/usr/bin/env python3
"""Write requirements.txt (what Chalice vendors into the function zip) from pyproject.toml.

    python scripts/sync_requirements.py          # write it
    python scripts/sync_requirements.py --check  # fail if it is out of date
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "# Generated from pyproject.toml [project].dependencies by scripts/sync_requirements.py; do not edit.\n"


def expected() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return HEADER + "".join(f"{spec}\n" for spec in project["dependencies"])


def main() -> int:
    target = ROOT / "requirements.txt"
    text = expected()
    if "--check" in sys.argv:
        if not target.exists() or target.read_text() != text:
            print("requirements.txt is out of date: run scripts/sync_requirements.py")
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
