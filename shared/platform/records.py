"""Reading bulk-import files: CSV (with a header) or NDJSON (`.ndjson`/`.jsonl`), one record per
line with its line number, so an import can report every bad row by line. A CSV empty cell is an
absent value; list columns are `;`-separated; boolean columns take true/false/1/0/yes/no."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.adapters.textfiles import ndjson_lines
from shared.errors import problem_location, problem_reason

_TRUE = {"true", "t", "1", "yes"}
_FALSE = {"false", "f", "0", "no"}
INVALID_JSON = "__invalid_json__"
EXTRA_COLUMNS = "__extra_columns__"
INVALID_TEXT = "__invalid_text__"


def csv_records(path: Path, *, list_columns: frozenset[str] = frozenset(),
                bool_columns: frozenset[str] = frozenset()) -> Iterator[tuple[int, dict[str, Any]]]:
    # utf-8-sig: Excel writes a byte-order mark, which would otherwise glue itself to the first
    # column's name. Undecodable bytes (a file cut inside a character) are kept as surrogates and
    # reported on their own line instead of failing the whole file.
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        for row in reader:
            if any(_undecodable(value) for value in row):
                yield reader.line_num, {INVALID_TEXT: "not valid UTF-8 text"}
                continue
            record: dict[str, Any] = {}
            for name, value in zip(header, row, strict=False):
                if value == "":
                    continue
                if name in list_columns:
                    record[name] = [item for item in value.split(";") if item]
                elif name in bool_columns:
                    flag = value.strip().lower()
                    record[name] = True if flag in _TRUE else False if flag in _FALSE else value
                else:
                    record[name] = value
            if len(row) > len(header):
                record[EXTRA_COLUMNS] = row[len(header):]
            yield reader.line_num, record


def ndjson_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, value, problem in ndjson_lines(path):
        yield line, value if problem is None else {INVALID_JSON: problem}


def file_records(path: Path, *, list_columns: frozenset[str] = frozenset(),
                 bool_columns: frozenset[str] = frozenset()) -> Iterator[tuple[int, dict[str, Any]]]:
    if path.suffix in (".ndjson", ".jsonl"):
        return ndjson_records(path)
    return csv_records(path, list_columns=list_columns, bool_columns=bool_columns)


def _undecodable(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def check_record_shape(record: Any) -> dict[str, Any]:
    """The problems every format can have before validation: not an object, not JSON, extra cells."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if INVALID_JSON in record:
        raise ValueError(f"not JSON: {record[INVALID_JSON]}")
    if INVALID_TEXT in record:
        raise ValueError(record[INVALID_TEXT])
    if EXTRA_COLUMNS in record:
        raise ValueError("more values than header columns")
    return record


def describe_problem(exc: Exception) -> str:
    """A row's refusal in one line: each pydantic problem as `field: reason`, else the error's text."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{problem_location(e) or 'row'}: {problem_reason(e)}" for e in exc.errors())
    return str(exc)
