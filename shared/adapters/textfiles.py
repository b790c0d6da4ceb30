"""Line-numbered reading of NDJSON files, for the bulk imports: each reports a bad row by its line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def ndjson_lines(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, decoded value, None) per non-blank line; (line, None, why) when it is not JSON."""
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if text.strip():
                try:
                    yield line, json.loads(text), None
                except json.JSONDecodeError as exc:
                    yield line, None, str(exc)
