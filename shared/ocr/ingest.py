"""Bulk imports: reading history (NDJSON or CSV) and corrections (CSV), each file one transaction.

Readings are stored idempotently on client_reading_id as history, without a score (triage and the
API score); corrections go through the same judgement as the API's. A bad row is reported by its
line and then nothing of the file is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.errors import FieldProblem, InvalidInput
from shared.ocr.corrections import judge_correction
from shared.ocr.files import validated_rows
from shared.ocr.normalise import canonical_plate, parse_meter
from shared.ocr.readings import CorrectionRequest, OcrReading, parse_reading_record
from shared.ocr.readings_repository import AssessedReading, same_content
from shared.ocr.services import OcrServices
from shared.platform.records import describe_problem
from shared.platform.time_range import is_plausible_time

CHUNK = 2000


def _normalized(reading: OcrReading) -> str | None:
    if reading.source_type == "license_plate":
        return canonical_plate(reading.ocr_text) or None
    parsed = parse_meter(reading.ocr_text)
    return parsed.text if parsed else None


def ingest_readings(services: OcrServices, tenant_id: str, path: Path) -> dict[str, Any]:
    seen: dict[str, int] = {}
    now = datetime.now(UTC)

    def parse(line: int, record: dict[str, Any]) -> OcrReading:
        reading = parse_reading_record(record, now)
        if reading.client_reading_id in seen:
            raise ValueError(f"client_reading_id repeats line {seen[reading.client_reading_id]}")
        seen[reading.client_reading_id] = line
        return reading

    rows = validated_rows(path, parse)
    return store_history(services, tenant_id, rows, path.name)


def store_history(services: OcrServices, tenant_id: str, rows: Sequence[tuple[int, OcrReading]],
                  name: str = "the batch") -> dict[str, Any]:
    """Store (line, reading) rows as unscored history in one transaction, idempotently."""
    stored = 0
    with services.transactions.transaction() as tx:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start:start + CHUNK]
            known = services.readings.stored(tx, tenant_id, [r.client_reading_id for _, r in chunk])
            changed = [FieldProblem(f"line {line}", "client_reading_id already stored with other content")
                       for line, r in chunk if r.client_reading_id in known and not same_content(known[r.client_reading_id], r)]
            if changed:
                raise InvalidInput(f"{len(changed)} changed reading(s) in {name}; nothing was stored", changed[:20])
            new = [AssessedReading(str(uuid.uuid4()), r, _normalized(r), None, False, ())
                   for _, r in chunk if r.client_reading_id not in known]
            stored += len(services.readings.insert(tx, tenant_id, new))
        services.readings.fold_plate_counts(tx, tenant_id, (r.source_id for _, r in rows if r.source_type == "license_plate"))
    return {"rows": len(rows), "stored": stored, "already_present": len(rows) - stored}


def ingest_corrections(services: OcrServices, tenant_id: str, path: Path) -> dict[str, Any]:
    """CSV columns client_reading_id, corrected_text, correction_type, and corrected_at (optional)."""
    def parse(line: int, record: dict[str, Any]) -> dict[str, Any]:
        missing = {"client_reading_id", "correction_type"} - set(record)
        if missing:
            raise ValueError(f"missing {', '.join(sorted(missing))}")
        return record

    return store_corrections(services, tenant_id, validated_rows(path, parse), path.name)


# A correction's time may be this far ahead of the import's clock (the labelling tool's own clock).
CORRECTED_AT_SLACK = timedelta(minutes=5)


def _corrected_at(text: str | None, now: datetime) -> datetime | None:
    """An imported correction's own time (ISO 8601 with a zone); None (blank): the import's."""
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"corrected_at {text[:40]!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise ValueError("corrected_at needs a time zone (e.g. Z or +01:00)")
    if not is_plausible_time(at) or at > now + CORRECTED_AT_SLACK:
        raise ValueError(f"corrected_at {text[:40]} is outside 2000-01-01 up to now")
    return at


def store_corrections(services: OcrServices, tenant_id: str, rows: Sequence[tuple[int, dict[str, Any]]],
                      name: str = "the batch") -> dict[str, Any]:
    """Store (line, {client_reading_id, corrected_text, correction_type, corrected_at?}) rows in one
    transaction; `corrected_at` keeps an imported history's own times (the weekly figures use them)."""
    now = datetime.now(UTC)
    with services.transactions.transaction() as tx:
        readings = services.corrections.readings_by_client_id(tx, tenant_id, [r["client_reading_id"] for _, r in rows])
        judged, problems = [], []
        for line, record in rows:
            reading = readings.get(record["client_reading_id"])
            if reading is None:
                problems.append(FieldProblem(f"line {line}", f"no reading {record['client_reading_id']} of this tenant"))
                continue
            try:
                request = CorrectionRequest(source_type=reading["source_type"], source_id=record["client_reading_id"],
                                            corrected_text=record.get("corrected_text", ""),
                                            correction_type=record["correction_type"])
                corrected_at = _corrected_at(record.get("corrected_at"), now)
            except ValueError as exc:
                problems.append(FieldProblem(f"line {line}", describe_problem(exc)))
                continue
            judged.append(replace(judge_correction(reading["source_type"], str(reading["reading_id"]),
                                                   reading["ocr_text"], request.corrected_text,
                                                   request.correction_type), created_at=corrected_at))
        if problems:
            raise InvalidInput(f"{len(problems)} bad row(s) in {name}; nothing was stored", problems[:20])
        results = services.corrections.add(tx, tenant_id, judged)
        services.readings.fold_plate_counts(tx, tenant_id, (reading["source_id"] for reading in readings.values()
                                                            if reading["source_type"] == "license_plate"))
    created = sum(1 for _, new in results if new)
    return {"rows": len(rows), "stored": created, "already_present": len(rows) - created,
            "errors": sum(1 for c in judged if c.is_error)}
