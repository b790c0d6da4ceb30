"""Argument types for the CLI's options: a bad value ends in argparse's own message naming the
option (exit 2) before any command runs, instead of a traceback or a silently odd run."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from shared.errors import FieldProblem, InvalidInput
from shared.platform.output_files import file_ids, writes_over
from shared.platform.time_range import is_plausible_time

if TYPE_CHECKING:
    from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound="BaseModel")


def positive_int(text: str) -> int:
    """A whole number of at least 1 (days, months, rounds, a batch size): 0 would mean everything or nothing."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive whole number (1 or more)")
    return value


def _number(text: str, within: Callable[[float], bool], what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not within(value):  # NaN fails every comparison: refused too
        raise argparse.ArgumentTypeError(f"{text} is not {what}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (an interval in seconds)."""
    return _number(text, lambda v: 0 < v < math.inf, "a number above 0")


def share(text: str) -> float:
    """A share in (0, 1]: above 0, at most 1 (the API's `target_share` rule)."""
    return _number(text, lambda v: 0 < v <= 1, "a share above 0 and at most 1")


def open_share(text: str) -> float:
    """A share strictly between 0 and 1 (a challenger's traffic: 0 and 1 are stop and activate)."""
    return _number(text, lambda v: 0 < v < 1, "a share strictly between 0 and 1 (both excluded)")


def http_url(text: str) -> str:
    """An http:// or https:// URL with a host (the API's base URL)."""
    from urllib.parse import urlsplit

    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL, e.g. http://127.0.0.1:8000")
    return text.strip()


def iso_datetime(text: str) -> datetime:
    """An ISO 8601 date or time; one without a zone is taken as UTC. Within 2000 up to 2100, as every
    time a client gives (a window back from year 1 would overflow)."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time, e.g. 2026-11-30T00:00:00Z") from None
    parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if not is_plausible_time(parsed):
        raise argparse.ArgumentTypeError(f"{text} is not within 2000-01-01 up to 2100-01-01")
    return parsed


# A training or drift window back from now: a century at most (a longer one reaches before year 1,
# which datetime cannot hold, and no deployment has such a history).
MAX_DAYS = 36_500
MAX_MONTHS = 1_200


def days(text: str) -> int:
    """A number of days: 1 up to MAX_DAYS."""
    value = positive_int(text)
    if value > MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{value} days is more than {MAX_DAYS} (a century)")
    return value


def months(text: str) -> int:
    """A number of months: 1 up to MAX_MONTHS."""
    value = positive_int(text)
    if value > MAX_MONTHS:
        raise argparse.ArgumentTypeError(f"{value} months is more than {MAX_MONTHS} (a century)")
    return value


def from_options(model: type[ModelT], **options: Any) -> ModelT:
    """A request body built from command-line options, checked by the same model as the API's; a
    value it refuses is one error naming the option (`--minutes: ...`), not pydantic's traceback."""
    from pydantic import ValidationError

    try:
        return model(**options)
    except ValidationError as exc:
        problems = [f"--{str(e['loc'][0]).replace('_', '-') if e['loc'] else 'options'}: {e['msg']}"
                    for e in exc.errors()]
        raise InvalidInput("; ".join(problems)) from None


def check_batch_files(source: Path, target: Path) -> None:
    """A batch command's --input exists and is no folder, and its --output is a file in a folder
    that exists, which would not replace the input (by any path or link), as the imports check
    their file: one error line, not a traceback from deep in the scoring, and never the input lost."""
    if not source.exists() or source.is_dir():  # a pipe or /dev/stdin is read as a file
        raise InvalidInput(f"no file {source}", [FieldProblem("--input", "not found" if not source.exists()
                                                              else "a folder, not a file")])
    if not target.name or target.is_dir():
        raise InvalidInput(f"--output {target} is a folder", [FieldProblem("--output", "a folder: name a file in it")])
    if not target.parent.is_dir():
        raise InvalidInput(f"no folder {target.parent} for {target.name}", [FieldProblem("--output", "folder not found")])
    if writes_over(target, file_ids([source])):
        raise InvalidInput(f"--output {target} would write over the input {source}",
                           [FieldProblem("--output", "is the input file: choose another file")])
