"""`mlstack anomaly backtest`: CSV files of `timestamp,value` scored as the scan would score them,
each row from the rows up to it only. A folder is processed recursively and mirrored."""

from __future__ import annotations

import csv
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import InvalidInput
from shared.monitoring.detectors import DETECTORS, ENSEMBLE, score_series
from shared.platform.output_files import file_ids, writes_over, written_whole

DETECTOR_CHOICES = (ENSEMBLE, *DETECTORS)


def _seconds(text: str) -> float:
    """Epoch seconds or an ISO 8601 time (naive taken as UTC); ValueError for anything else."""
    text = text.strip()
    try:
        return float(text)  # epoch seconds
    except ValueError:
        pass
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # naive timestamps are taken as UTC
    return parsed.timestamp()


def _value(text: str) -> float:
    """A finite number; an empty value is a gap (NaN: scored 0, not used as history); ValueError for
    text, and for `nan`, `inf` or a number past float range, which would pass for a gap or break
    the detectors' sums."""
    if not text.strip():
        return float("nan")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _rows(source: Path) -> tuple[list[str], list[list[str]], list[float], list[float]]:
    """The header, the rows and their times and values; a row that is not a time and a number is
    refused with its line, as a silently zero-scored row would hide a broken export."""
    # utf-8-sig: a byte-order mark (Excel's) is not part of the first column's name.
    with source.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise InvalidInput(f"{source}: empty file")
        columns = [h.strip() for h in header]
        if "timestamp" not in columns or "value" not in columns:
            raise InvalidInput(f"{source}: needs the columns timestamp,value (has {','.join(columns)})")
        t_col, v_col = columns.index("timestamp"), columns.index("value")
        rows: list[list[str]] = []
        times: list[float] = []
        values: list[float] = []
        for row in reader:
            if not row:
                continue
            line = reader.line_num
            try:
                times.append(_seconds(row[t_col]))
            except (ValueError, IndexError, OverflowError, OSError):
                raise InvalidInput(f"{source}: line {line}: timestamp {_shown(row, t_col)} is neither epoch seconds"
                                   " nor ISO 8601") from None
            try:
                values.append(_value(row[v_col]))
            except (ValueError, IndexError):
                raise InvalidInput(f"{source}: line {line}: value {_shown(row, v_col)} is not a finite number"
                                   " (an empty value is a gap)") from None
            rows.append(row)
    return columns, rows, times, values


def _shown(row: list[str], column: int) -> str:
    return repr(row[column][:40]) if column < len(row) else "missing"


def _series(source: Path) -> tuple[list[str], list[list[str]], np.ndarray, np.ndarray]:
    columns, rows, time_list, value_list = _rows(source)
    times = np.array(time_list, dtype=np.float64)
    values = np.array(value_list, dtype=np.float64)
    # Rows are scored in file order; timestamps must not go backwards (the detectors look back in time).
    if len(times) > 1 and np.any(np.diff(times) < 0):
        line = int(np.flatnonzero(np.diff(times) < 0)[0]) + 3  # the header is line 1 (blank lines aside)
        raise InvalidInput(f"{source}: timestamps must be in ascending order (about line {line} goes back)")
    return columns, rows, times, values


def backtest_file(source: Path, target: Path, detector: str = ENSEMBLE) -> int:
    columns, rows, times, values = _series(source)
    scores = score_series(times, values, detector=detector).combined
    target.parent.mkdir(parents=True, exist_ok=True)
    with written_whole(target) as handle:
        writer = csv.writer(handle)
        writer.writerow([*columns, "anomaly_score"])
        for row, score in zip(rows, scores.tolist(), strict=True):
            writer.writerow([*row, f"{score:.6f}"])
    return len(rows)


def backtest(input_path: Path, output_path: Path, detector: str = ENSEMBLE) -> dict[str, Any]:
    if detector not in DETECTOR_CHOICES:
        raise InvalidInput(f"unknown detector {detector!r}; one of {', '.join(DETECTOR_CHOICES)}")
    started = time.perf_counter()
    if input_path.is_dir():
        if output_path.resolve() == input_path.resolve() or input_path.resolve() in output_path.resolve().parents:
            # Written over or into the input, the series would gain a column on every run.
            raise InvalidInput(f"--output {output_path} is the input folder or inside it: choose another folder")
        pairs = [(f, output_path / f.relative_to(input_path)) for f in sorted(input_path.rglob("*.csv"))]
    elif input_path.is_file():
        pairs = [(input_path, output_path / input_path.name if output_path.is_dir() else output_path)]
    else:
        raise InvalidInput(f"{input_path} does not exist")
    inputs = file_ids(source for source, _ in pairs)
    for _, target in pairs:
        if writes_over(target, inputs):
            raise InvalidInput(f"--output {target} is the input file (or a link to it): choose another file")
    for source, _ in pairs:  # every file checked before any is written: a bad one leaves no half run
        _series(source)
    points = sum(backtest_file(source, target, detector) for source, target in pairs)
    elapsed = time.perf_counter() - started
    return {"files": len(pairs), "points": points, "detector": detector, "seconds": round(elapsed, 3),
            "points_per_second": round(points / elapsed, 1) if elapsed > 0 else None}
