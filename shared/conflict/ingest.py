"""Bulk import of sync-event history from CSV or NDJSON.

The whole file is validated first, so a bad row is reported with its line number before anything
is stored; then rows are stored in batches, one transaction each, through the same idempotent
path as the API (a re-run after a fix stores nothing twice).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.conflict.events import SyncEvent, store_sync_events
from shared.context import AppContext
from shared.errors import FieldProblem, InvalidInput

INGEST_BATCH = 5000
MAX_REPORTED_ERRORS = 20
_LIST_COLUMNS = ("fields_changed", "conflict_fields")
_TRUE = {"true", "t", "1", "yes"}
_FALSE = {"false", "f", "0", "no", ""}


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        for record in reader:
            line = reader.line_num
            cleaned: dict[str, Any] = {k: v for k, v in record.items() if v not in ("", None)}
            for column in _LIST_COLUMNS:
                if column in cleaned:
                    cleaned[column] = [item for item in cleaned[column].split(";") if item]
            if "conflicted" in cleaned:
                flag = str(cleaned["conflicted"]).strip().lower()
                cleaned["conflicted"] = True if flag in _TRUE else False if flag in _FALSE else flag
            yield line, cleaned


def _ndjson_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if text.strip():
                try:
                    yield line, json.loads(text)
                except json.JSONDecodeError as exc:
                    yield line, {"__invalid_json__": str(exc)}


def read_sync_events(path: Path) -> list[SyncEvent]:
    """Every row validated; InvalidInput names each bad line (the first 20) and stores nothing."""
    records = _ndjson_records(path) if path.suffix in (".ndjson", ".jsonl") else _csv_records(path)
    events: list[SyncEvent] = []
    problems: list[FieldProblem] = []
    seen: dict[str, int] = {}
    for line, record in records:
        try:
            if "__invalid_json__" in record:
                raise ValueError(f"not JSON: {record['__invalid_json__']}")
            event = SyncEvent.model_validate(record)
            if event.received_at is None:
                raise ValueError("received_at is required in a history import")
            if event.client_event_id in seen:
                raise ValueError(f"client_event_id repeats line {seen[event.client_event_id]}")
            seen[event.client_event_id] = line
            events.append(event)
        except (ValidationError, ValueError) as exc:
            detail = (
                "; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in exc.errors())
                if isinstance(exc, ValidationError)
                else str(exc)
            )
            problems.append(FieldProblem(f"line {line}", detail))
    if problems:
        shown = problems[:MAX_REPORTED_ERRORS]
        more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
        raise InvalidInput(f"{len(problems)} bad row(s) in {path.name}; nothing was stored{more}", shown)
    return events


def ingest_sync_events(
    context: AppContext, tenant_id: str, path: Path, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    events = read_sync_events(path)
    stored_before = _count(context, tenant_id)
    for start in range(0, len(events), INGEST_BATCH):
        batch = events[start : start + INGEST_BATCH]
        with context.database.transaction() as tx:
            store_sync_events(tx, tenant_id, batch, datetime.now(UTC))
        if progress:
            progress(len(batch))
    new = _count(context, tenant_id) - stored_before
    return {"rows": len(events), "stored": new, "already_present": len(events) - new}


def _count(context: AppContext, tenant_id: str) -> int:
    with context.database.transaction() as tx:
        return int(tx.fetch_value("SELECT count(*) FROM sync_events WHERE tenant_id = CAST(:t AS uuid)", t=tenant_id))
