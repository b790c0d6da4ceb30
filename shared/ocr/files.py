"""Reading NDJSON and CSV files row by row, with the line each row came from: the bulk imports
and triage report a bad row by its line, and store nothing of a file with one."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from shared.adapters.textfiles import ndjson_lines
from shared.errors import FieldProblem, InvalidInput
from shared.platform.records import describe_problem

MAX_REPORTED = 20
Row = TypeVar("Row")


def _csv_records(path: Path) -> Iterator[tuple[int, Any]]:
    # utf-8-sig: a byte-order mark (Excel) would otherwise become part of the first column's name.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                yield reader.line_num, ValueError("more values than header columns")
                continue
            yield reader.line_num, {name: value for name, value in zip(header, row, strict=False) if value != ""}


def _ndjson_records(path: Path) -> Iterator[tuple[int, Any]]:
    for line, value, problem in ndjson_lines(path):
        yield line, value if problem is None else ValueError(f"not JSON: {problem}")


def records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, record) per row; a record that could not be read is a ValueError in its place."""
    if not path.is_file():
        raise InvalidInput(f"no file {path}", [FieldProblem("file", "not found")])
    return _ndjson_records(path) if path.suffix in (".ndjson", ".jsonl") else _csv_records(path)


def validated_rows(path: Path, parse: Callable[[int, Any], Row]) -> list[tuple[int, Row]]:
    """Every row parsed, or InvalidInput listing the bad ones (the first 20) by line."""
    rows: list[tuple[int, Row]] = []
    problems: list[FieldProblem] = []
    for line, record in records(path):
        try:
            if isinstance(record, Exception):
                raise record
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            rows.append((line, parse(line, record)))
        except (ValidationError, ValueError) as exc:
            problems.append(FieldProblem(f"line {line}", describe_problem(exc)))
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise InvalidInput(f"{len(problems)} bad row(s) in {path.name}; nothing was stored{more}",
                           problems[:MAX_REPORTED])
    return rows
