"""Bulk imports of the fraud loop (`mlstack ingest sites|holidays|attendance|fraud-labels`): a file
is one transaction; every bad row is reported with its line number (the first 20), and then
nothing of the file is stored. Rows go through the same models and statements as the API."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.context import AppContext
from shared.errors import Conflict, FieldProblem, InvalidInput
from shared.fraud.intake import AttendanceEventIn, FraudLabelIn, HolidayIn, SiteIn
from shared.fraud.intake_repository import (
    store_attendance_events,
    store_labels,
    unknown_event_ids,
    upsert_holidays,
    upsert_sites,
)
from shared.platform.records import check_record_shape, describe_problem, file_records

MAX_REPORTED_ERRORS = 20
STORE_CHUNK = 1000
Row = TypeVar("Row", bound=BaseModel)
_BOOLEANS = frozenset({"biometric_verified", "is_fraud"})


def read_valid_rows(path: Path, model: type[Row], key: Callable[[Row], str] | None = None) -> list[Row]:
    """Every row validated; InvalidInput listing the bad ones by line when any is bad."""
    return [row for _, row in read_numbered_rows(path, model, key)]


def read_numbered_rows(path: Path, model: type[Row], key: Callable[[Row], str] | None = None) -> list[tuple[int, Row]]:
    """Every row validated, with its line; InvalidInput listing the bad ones by line when any is bad."""
    rows, problems = _validate_rows(path, model, key)
    _refuse(path, problems)
    if not rows:
        raise InvalidInput(f"{path.name} holds no rows", [FieldProblem("file", "no rows")])
    return rows


def _validate_rows(
    path: Path, model: type[Row], key: Callable[[Row], str] | None,
) -> tuple[list[tuple[int, Row]], list[FieldProblem]]:
    """The valid rows with their lines, and a problem per bad line (a repeated key is one)."""
    rows: list[tuple[int, Row]] = []
    problems: list[FieldProblem] = []
    seen: dict[str, int] = {}
    try:
        for line, record in file_records(path, bool_columns=_BOOLEANS):
            try:
                row = model.model_validate(check_record_shape(record))
                if key is not None:
                    if key(row) in seen:
                        raise ValueError(f"{key(row)} repeats line {seen[key(row)]}")
                    seen[key(row)] = line
                rows.append((line, row))
            except (ValidationError, ValueError) as exc:
                problems.append(FieldProblem(f"line {line}", describe_problem(exc)))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path.name}: {exc}; nothing was stored", [FieldProblem("file", str(exc))]) from None
    return rows, problems


def _refuse(path: Path, problems: list[FieldProblem]) -> None:
    if problems:
        raise InvalidInput(f"{len(problems)} bad row(s) in {path.name}; nothing was stored",
                           problems[:MAX_REPORTED_ERRORS])


def _in_chunks(context: AppContext, rows: Sequence[Any], store: Callable[[Any, Sequence[Any]], Any]) -> int:
    with context.database.transaction() as tx:
        for start in range(0, len(rows), STORE_CHUNK):
            store(tx, rows[start:start + STORE_CHUNK])
    return len(rows)


def ingest_sites(context: AppContext, tenant_id: str, path: Path) -> dict[str, Any]:
    rows = read_valid_rows(path, SiteIn, key=lambda s: s.site_id)
    return {"sites": _in_chunks(context, rows, lambda tx, chunk: upsert_sites(tx, tenant_id, chunk))}


def ingest_holidays(context: AppContext, tenant_id: str, path: Path) -> dict[str, Any]:
    rows = read_valid_rows(path, HolidayIn, key=lambda h: h.date.isoformat())
    return {"holidays": _in_chunks(context, rows, lambda tx, chunk: upsert_holidays(tx, tenant_id, chunk))}


def ingest_attendance(context: AppContext, tenant_id: str, path: Path) -> dict[str, Any]:
    numbered = read_numbered_rows(path, AttendanceEventIn, key=lambda e: e.client_event_id)
    rows = [row for _, row in numbered]
    try:
        stored = _in_chunks(context, rows, lambda tx, chunk: store_attendance_events(tx, tenant_id, chunk))
    except Conflict as exc:
        # The same id already stored with other content: say where in the file.
        line_of = {row.client_event_id: line for line, row in numbered}
        problems = [FieldProblem(f"line {line_of[p.field]}", f"client_event_id {p.field}: {p.reason}")
                    for p in exc.fields if p.field in line_of]
        raise Conflict(f"{len(problems)} row(s) of {path.name} conflict with stored events; nothing was stored",
                       problems[:MAX_REPORTED_ERRORS]) from None
    return {"events": stored}


def ingest_fraud_labels(context: AppContext, tenant_id: str, path: Path) -> dict[str, Any]:
    """Both checks' bad rows in one report: the rows' own (and repeats) and the ids of no stored event."""
    numbered, problems = _validate_rows(path, FraudLabelIn, key=lambda label: label.client_event_id)
    with context.database.transaction() as tx:
        unknown = unknown_event_ids(tx, tenant_id, [row.client_event_id for _, row in numbered])
        problems += [FieldProblem(f"line {line}", f"client_event_id {row.client_event_id}: no stored attendance event")
                     for line, row in numbered if row.client_event_id in unknown]
        problems.sort(key=lambda problem: int(problem.field.removeprefix("line ")))
        _refuse(path, problems)
        if not numbered:
            raise InvalidInput(f"{path.name} holds no rows", [FieldProblem("file", "no rows")])
        rows = [row for _, row in numbered]
        for start in range(0, len(rows), STORE_CHUNK):
            store_labels(tx, tenant_id, rows[start:start + STORE_CHUNK])
    return {"labels": len(rows)}
