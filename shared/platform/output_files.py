"""A batch command's output file: there whole or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def written_whole(target: Path) -> Iterator[IO[str]]:
    """A text file (UTF-8, newlines as written) written to `<target>.partial`, which replaces
    `target` once the block ends without an error: a failed run leaves no file behind, and a file
    already there as it was (shared/platform/cli_args.py's check_batch_files keeps both paths off
    the input)."""
    partial = target.with_suffix(target.suffix + ".partial")
    try:
        with partial.open("w", newline="", encoding="utf-8") as sink:
            yield sink
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
