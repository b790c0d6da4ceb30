"""Line-numbered reading of NDJSON files, for the bulk imports: each reports a bad row by its line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def ndjson_lines(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, decoded value, None) per non-blank line; (line, None, why) when it is not JSON."""
    # Bytes, decoded line by line: a line that is not UTF-8 (a file cut inside a character) is
    # reported on its own line; a byte-order mark on the first line is dropped.
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8-sig" if line == 1 else "utf-8")
            except UnicodeDecodeError:
                yield line, None, "not valid UTF-8 text"
                continue
            if text.strip():
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield line, None, str(exc)
                except RecursionError:  # thousands of nested brackets exhaust the decoder's stack
                    yield line, None, "nested too deeply"
                else:
                    yield line, value, None
