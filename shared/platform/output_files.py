"""A batch command's output file: there whole or not at all, and never over an input."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _partial(target: Path) -> Path:
    return target.with_suffix(target.suffix + ".partial")


FileIds = frozenset[tuple[int, int]]


def file_ids(paths: Iterable[Path]) -> FileIds:
    """What the files are, whatever path, symbolic or hard link names them: device and inode."""
    return frozenset((s.st_dev, s.st_ino) for s in (path.stat() for path in paths))


def writes_over(target: Path, inputs: FileIds) -> bool:
    """Writing `target` (through its partial file) would replace one of the input files."""
    for written in (target, _partial(target)):
        try:
            found = written.stat()
        except FileNotFoundError:
            continue
        if (found.st_dev, found.st_ino) in inputs:
            return True
    return False


@contextmanager
def written_whole(target: Path) -> Iterator[IO[str]]:
    """A text file (UTF-8, newlines as written) written to `<target>.partial`, which replaces
    `target` once the block ends without an error: a failed run leaves no file behind, and a file
    already there as it was (callers check `writes_over` first)."""
    partial = _partial(target)
    try:
        with partial.open("w", newline="", encoding="utf-8") as sink:
            yield sink
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
