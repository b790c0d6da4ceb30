"""Bulk import of sync-event history from CSV or NDJSON.

The file is one transaction: rows are validated and streamed in chunks by COPY into the intake
staging table, and merged through the same idempotent statement as the API (a re-run stores
nothing twice). A bad row is reported with its line number, every bad row of the file is listed
(the first 20), and then nothing of the file is stored. A child process validates while this one
feeds PostgreSQL the previous chunk, so the two cores overlap.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.conflict.events import SyncEvent
from shared.conflict.events_repository import clear_stage, copy_into_stage, merge_staged_events, stage_for_intake
from shared.context import AppContext
from shared.errors import Conflict, FieldProblem, InvalidInput
from shared.platform.records import check_record_shape, describe_problem, file_records

CHUNK_ROWS = 2000
MAX_REPORTED_ERRORS = 20
_LIST_COLUMNS = frozenset({"fields_changed", "conflict_fields"})


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    return file_records(path, list_columns=_LIST_COLUMNS, bool_columns=frozenset({"conflicted"}))


def _validate(line: int, record: Any, seen: dict[str, int]) -> SyncEvent:
    event = SyncEvent.model_validate(check_record_shape(record))
    if event.received_at is None:
        raise ValueError("received_at is required in a history import")
    if event.client_event_id in seen:
        raise ValueError(f"client_event_id repeats line {seen[event.client_event_id]}")
    seen[event.client_event_id] = line
    return event


def _describe(exc: ValidationError | ValueError) -> str:
    return describe_problem(exc)


def _array_literal(items: list[str]) -> str:
    return "{" + ",".join(f'"{item}"' for item in items) + "}"


def _copy_row(event: SyncEvent) -> list[str]:
    """One staging row in COPY's CSV form. Array elements are quoted: unquoted, a field named
    NULL would become an SQL NULL (names are validated to hold no quotes or backslashes)."""
    return [
        event.client_event_id, event.user_id, event.device_id, event.domain, event.entity_type, event.entity_id,
        _array_literal(event.fields_changed),
        event.client_last_sync_at.isoformat() if event.client_last_sync_at else "",
        event.received_at.isoformat() if event.received_at else "",
        "t" if event.conflicted else "f",
        _array_literal(event.conflict_fields),
    ]


def _produce_chunks(path: Path, chunks: Any) -> None:  # chunks: the child's end of a Pipe
    """Child process: read and validate every row; send COPY-ready CSV chunks, then the verdict.

    A process, not a thread: validation is CPU-bound Python, and sharing the GIL with the thread
    that talks to PostgreSQL made both wait on each other.
    """
    try:
        _validate_and_send(path, chunks)
    except Exception as exc:  # noqa: BLE001 - an unreadable file: tell the parent, which rolls back
        chunks.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        chunks.close()


def _validate_and_send(path: Path, chunks: Any) -> None:
    problems: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    buffer = io.StringIO()
    rows_out = csv.writer(buffer)
    pending = total = 0
    lines: dict[str, int] = {}  # this chunk's ids and their lines, to place a conflict in the file
    for line, record in _records(path):
        total += 1
        try:
            event = _validate(line, record, seen)
        except (ValidationError, ValueError) as exc:
            problems.append((f"line {line}", _describe(exc)))
            continue
        if problems:
            continue  # the file will not be stored; keep validating to report every bad row
        rows_out.writerow(_copy_row(event))
        lines[event.client_event_id] = line
        pending += 1
        if pending == CHUNK_ROWS:
            chunks.send(("chunk", buffer.getvalue(), pending, lines))
            buffer.seek(0)
            buffer.truncate()
            pending, lines = 0, {}
    if pending and not problems:
        chunks.send(("chunk", buffer.getvalue(), pending, lines))
    chunks.send(("done", total, problems))


def ingest_sync_events(
    context: AppContext, tenant_id: str, path: Path, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    if not path.is_file():
        raise InvalidInput(f"no file {path}", [FieldProblem("file", "not found")])
    # fork: the child needs only this module, already imported; it never touches the parent's
    # database connection.
    # A plain pipe written from the child's main thread: a Queue's feeder thread would fight the
    # validating thread for the child's GIL and deliver every chunk only at the end.
    processes = multiprocessing.get_context("fork")
    chunks, child_end = processes.Pipe(duplex=False)
    producer = processes.Process(target=_produce_chunks, args=(path, child_end), daemon=True)
    producer.start()
    child_end.close()
    now = datetime.now(UTC)
    stored = total = 0
    problems: list[tuple[str, str]] = []
    last_message_read = False
    try:
        with context.database.transaction() as tx:
            stage_for_intake(tx)
            while True:
                if not chunks.poll(600):
                    raise InvalidInput(f"reading {path.name} stalled for 10 minutes; nothing was stored")
                try:
                    message = chunks.recv()
                except EOFError:
                    raise InvalidInput(f"reading {path.name} failed; nothing was stored") from None
                last_message_read = message[0] in ("failed", "done")
                if message[0] == "failed":
                    raise InvalidInput(f"cannot read {path.name}: {message[1]}; nothing was stored",
                                       [FieldProblem("file", message[1])])
                if message[0] == "done":
                    _, total, problems = message
                    break
                _, chunk, rows, lines = message
                copy_into_stage(tx, io.StringIO(chunk))
                try:
                    stored += merge_staged_events(tx, tenant_id, now, staged=rows)
                except Conflict as exc:
                    placed = [FieldProblem(f"line {lines[p.field]}", f"client_event_id {p.field}: {p.reason}")
                              for p in exc.fields if p.field in lines]
                    raise Conflict(f"{len(placed)} row(s) of {path.name} conflict with stored events;"
                                   " nothing was stored", placed[:MAX_REPORTED_ERRORS]) from None
                clear_stage(tx)
                if progress:
                    progress(rows)
            if total == 0:
                raise InvalidInput(f"{path.name} holds no rows; nothing was stored", [FieldProblem("file", "no rows")])
            if problems:
                shown = [FieldProblem(where, reason) for where, reason in problems[:MAX_REPORTED_ERRORS]]
                more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
                # Raised inside the transaction: whatever was merged so far is rolled back.
                raise InvalidInput(f"{len(problems)} bad row(s) in {path.name}; nothing was stored{more}", shown)
    finally:
        if last_message_read:  # the child is ending by itself: let it (a kill would cut its exit short)
            producer.join(timeout=10)
        if producer.is_alive():
            producer.terminate()
        producer.join()
        chunks.close()
    return {"rows": total, "stored": stored, "already_present": total - stored}
