"""Bulk import of sync-event history from CSV or NDJSON.

The file is one transaction: rows are validated and streamed in chunks by COPY into the intake
staging table, and merged through the same idempotent statement as the API (a re-run stores
nothing twice). A bad row is reported with its line number, every bad row of the file is listed
(the first 20), and then nothing of the file is stored. Validation runs in this thread while a
writer thread waits on PostgreSQL with the previous chunk, so the two cores overlap.
"""

from __future__ import annotations

import csv
import io
import json
import queue
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.conflict.events import COPY_INTO_STAGE_SQL, SyncEvent, merge_staged_events, stage_for_intake
from shared.context import AppContext
from shared.errors import FieldProblem, InvalidInput

CHUNK_ROWS = 5000
MAX_REPORTED_ERRORS = 20
_LIST_COLUMNS = frozenset({"fields_changed", "conflict_fields"})
_TRUE = {"true", "t", "1", "yes"}
_FALSE = {"false", "f", "0", "no", ""}


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        for row in reader:
            record: dict[str, Any] = {}
            for name, value in zip(header, row, strict=False):
                if value == "":
                    continue
                if name in _LIST_COLUMNS:
                    record[name] = [item for item in value.split(";") if item]
                elif name == "conflicted":
                    flag = value.strip().lower()
                    record[name] = True if flag in _TRUE else False if flag in _FALSE else value
                else:
                    record[name] = value
            if len(row) > len(header):
                record["__extra_columns__"] = row[len(header):]
            yield reader.line_num, record


def _ndjson_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if text.strip():
                try:
                    yield line, json.loads(text)
                except json.JSONDecodeError as exc:
                    yield line, {"__invalid_json__": str(exc)}


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    return _ndjson_records(path) if path.suffix in (".ndjson", ".jsonl") else _csv_records(path)


def _validate(line: int, record: dict[str, Any], seen: dict[str, int]) -> SyncEvent:
    if "__invalid_json__" in record:
        raise ValueError(f"not JSON: {record['__invalid_json__']}")
    if "__extra_columns__" in record:
        raise ValueError("more values than header columns")
    event = SyncEvent.model_validate(record)
    if event.received_at is None:
        raise ValueError("received_at is required in a history import")
    if event.client_event_id in seen:
        raise ValueError(f"client_event_id repeats line {seen[event.client_event_id]}")
    seen[event.client_event_id] = line
    return event


def _describe(exc: ValidationError | ValueError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in exc.errors())
    return str(exc)


def _copy_row(event: SyncEvent) -> list[str]:
    """One staging row in COPY's CSV form (arrays as PostgreSQL literals; names are validated to
    contain no quotes, commas or braces)."""
    return [
        event.client_event_id, event.user_id, event.device_id, event.domain, event.entity_type, event.entity_id,
        "{" + ",".join(event.fields_changed) + "}",
        event.client_last_sync_at.isoformat() if event.client_last_sync_at else "",
        event.received_at.isoformat() if event.received_at else "",
        "t" if event.conflicted else "f",
        "{" + ",".join(event.conflict_fields) + "}",
    ]


class _ChunkWriter:
    """Owns the import's one transaction in a thread: COPY each chunk, merge it, count."""

    def __init__(self, context: AppContext, tenant_id: str, now: datetime) -> None:
        self._context, self._tenant_id, self._now = context, tenant_id, now
        self._chunks: queue.Queue[tuple[str, int] | None] = queue.Queue(maxsize=2)
        self._abort = threading.Event()
        self.error: BaseException | None = None
        self.stored = 0
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()

    def put(self, chunk: str, rows: int) -> None:
        self._chunks.put((chunk, rows))

    def finish(self, commit: bool) -> None:
        if not commit:
            self._abort.set()
        self._chunks.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        class _Rollback(Exception):
            pass

        try:
            with self._context.database.transaction() as tx:
                stage_for_intake(tx)
                while (item := self._chunks.get()) is not None:
                    if self._abort.is_set():
                        continue  # keep draining so the producer never blocks
                    chunk, rows = item
                    tx.copy_in(COPY_INTO_STAGE_SQL, io.StringIO(chunk))
                    self.stored += merge_staged_events(tx, self._tenant_id, self._now, staged=rows)
                    tx.execute("TRUNCATE incoming_sync_events")
                if self._abort.is_set():
                    raise _Rollback
        except _Rollback:
            self.stored = 0
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self.error = exc
            self.stored = 0
            while self._chunks.get() is not None:  # unblock the producer
                pass
        finally:
            self._context.database.close()


def ingest_sync_events(
    context: AppContext, tenant_id: str, path: Path, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    writer = _ChunkWriter(context, tenant_id, datetime.now(UTC))
    problems: list[FieldProblem] = []
    seen: dict[str, int] = {}
    buffer = io.StringIO()
    rows_out = csv.writer(buffer)
    pending = total = 0
    try:
        for line, record in _records(path):
            total += 1
            try:
                event = _validate(line, record, seen)
            except (ValidationError, ValueError) as exc:
                problems.append(FieldProblem(f"line {line}", _describe(exc)))
                continue
            if problems:
                continue  # the file will not be stored; keep validating to report every bad row
            rows_out.writerow(_copy_row(event))
            pending += 1
            if pending == CHUNK_ROWS:
                writer.put(buffer.getvalue(), pending)
                buffer.seek(0)
                buffer.truncate()
                if progress:
                    progress(pending)
                pending = 0
        if pending and not problems:
            writer.put(buffer.getvalue(), pending)
            if progress:
                progress(pending)
    except BaseException:
        writer.finish(commit=False)
        raise
    writer.finish(commit=not problems)
    if problems:
        shown = problems[:MAX_REPORTED_ERRORS]
        more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
        raise InvalidInput(f"{len(problems)} bad row(s) in {path.name}; nothing was stored{more}", shown)
    return {"rows": total, "stored": writer.stored, "already_present": total - writer.stored}

