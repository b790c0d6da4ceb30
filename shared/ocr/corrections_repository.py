"""Where corrections are stored: one row per distinct (reading, type, corrected text), so the same
correction sent twice is the same row and gets the same id."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.adapters.db import Transaction, is_uuid
from shared.ocr.readings_repository import OcrMemory, text_array


@dataclass(frozen=True)
class NewCorrection:
    reading_id: str
    corrected_text: str
    correction_type: str
    is_error: bool
    resets_meter: bool
    character_error_rate: float
    # When it was made: an imported history's own time (`corrected_at`); None: now.
    created_at: datetime | None = None


class CorrectionRepository(Protocol):
    def find_reading(self, tx: Any, tenant_id: str, source_type: str, reference: str) -> dict[str, Any] | None:
        """This tenant's reading by its reading_id or its client_reading_id, of this source type."""
        ...

    def readings_by_client_id(self, tx: Any, tenant_id: str, client_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def add(self, tx: Any, tenant_id: str, corrections: Sequence[NewCorrection]) -> list[tuple[str, bool]]:
        """Store what is new; (correction_id, created) per correction, in order."""
        ...


# -- PostgreSQL ---------------------------------------------------------------------------------

_READING_COLUMNS = "reading_id::text AS reading_id, client_reading_id, source_type, source_id, ocr_text"
_FIND_BY_ID_SQL = f"""
SELECT {_READING_COLUMNS} FROM ocr_readings
WHERE tenant_id = CAST(:tenant AS uuid) AND source_type = :source_type
  AND (client_reading_id = :ref OR reading_id = CAST(:ref_uuid AS uuid))
ORDER BY (client_reading_id = :ref) DESC LIMIT 1
"""
_BY_CLIENT_IDS_SQL = f"""
SELECT {_READING_COLUMNS} FROM ocr_readings
WHERE tenant_id = CAST(:tenant AS uuid) AND client_reading_id = ANY(CAST(:ids AS text[]))
"""
_ADD_SQL = """
WITH incoming AS (
    SELECT ordinality, reading_id, corrected_text, correction_type, is_error, resets_meter, character_error_rate,
        created_at, min(ordinality) OVER (PARTITION BY reading_id, corrected_text, correction_type) AS first_of_its_kind
    FROM jsonb_to_recordset(CAST(:batch AS jsonb)) AS c(ordinality int, reading_id uuid, corrected_text text,
        correction_type text, is_error boolean, resets_meter boolean, character_error_rate float8,
        created_at timestamptz)
),
inserted AS (
    INSERT INTO ocr_corrections (tenant_id, reading_id, corrected_text, correction_type, is_error, resets_meter,
        character_error_rate, created_at)
    SELECT CAST(:tenant AS uuid), reading_id, corrected_text, correction_type, is_error, resets_meter,
        character_error_rate, COALESCE(created_at, now())
    FROM incoming ORDER BY ordinality
    ON CONFLICT (tenant_id, reading_id, correction_type, corrected_text) DO NOTHING
    RETURNING correction_id, reading_id, corrected_text, correction_type
)
SELECT i.ordinality, COALESCE(n.correction_id, o.correction_id)::text AS correction_id,
       n.correction_id IS NOT NULL AND i.ordinality = i.first_of_its_kind AS created  -- a batch's repeat is not
FROM incoming i
LEFT JOIN inserted n USING (reading_id, corrected_text, correction_type)
LEFT JOIN ocr_corrections o ON o.tenant_id = CAST(:tenant AS uuid) AND o.reading_id = i.reading_id
     AND o.corrected_text = i.corrected_text AND o.correction_type = i.correction_type
ORDER BY i.ordinality
"""
# The stored ids of corrections the statement above found taken by a concurrent request: its
# snapshot predates that request's commit, so only a later statement sees the row it waited for.
_STORED_IDS_SQL = """
SELECT c.ordinality, o.correction_id::text AS correction_id
FROM jsonb_to_recordset(CAST(:batch AS jsonb)) AS c(ordinality int, reading_id uuid, corrected_text text,
    correction_type text)
JOIN ocr_corrections o ON o.tenant_id = CAST(:tenant AS uuid) AND o.reading_id = c.reading_id
     AND o.corrected_text = c.corrected_text AND o.correction_type = c.correction_type
"""


# The plate readings a batch corrects, locked in reading-id order before its insert: the count
# trigger (migration 0025) locks each corrected plate reading, and in the batch's own row order two
# batches of the same readings in other orders deadlocked.
_LOCK_PLATE_READINGS_SQL = """
SELECT 1 FROM ocr_readings WHERE reading_id = ANY(CAST(:ids AS uuid[])) AND source_type = 'license_plate'
ORDER BY reading_id FOR NO KEY UPDATE
"""


class PostgresCorrectionRepository:
    def find_reading(self, tx: Transaction, tenant_id: str, source_type: str, reference: str) -> dict[str, Any] | None:
        return tx.fetch_one(_FIND_BY_ID_SQL, tenant=tenant_id, source_type=source_type, ref=reference,
                            ref_uuid=reference if is_uuid(reference) else None)

    def readings_by_client_id(
        self, tx: Transaction, tenant_id: str, client_ids: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        rows = tx.fetch_all(_BY_CLIENT_IDS_SQL, tenant=tenant_id, ids=text_array(client_ids))
        return {row["client_reading_id"]: row for row in rows}

    def add(self, tx: Transaction, tenant_id: str, corrections: Sequence[NewCorrection]) -> list[tuple[str, bool]]:
        if not corrections:
            return []
        batch = json.dumps([{"ordinality": n, **c.__dict__, "created_at": c.created_at.isoformat() if c.created_at
                             else None} for n, c in enumerate(corrections)])
        readings = sorted({c.reading_id for c in corrections})
        if len(readings) > 1:
            tx.fetch_all(_LOCK_PLATE_READINGS_SQL, ids=text_array(readings))
        rows = tx.fetch_all(_ADD_SQL, tenant=tenant_id, batch=batch)
        if any(row["correction_id"] is None for row in rows):
            stored = {row["ordinality"]: row["correction_id"] for row in tx.fetch_all(_STORED_IDS_SQL, tenant=tenant_id,
                                                                                      batch=batch)}
            rows = [{**row, "correction_id": row["correction_id"] or stored[row["ordinality"]]} for row in rows]
        return [(row["correction_id"], bool(row["created"])) for row in rows]


# -- in memory ----------------------------------------------------------------------------------


class InMemoryCorrectionRepository:
    def __init__(self, memory: OcrMemory) -> None:
        self.memory = memory

    def _reading(self, row: dict[str, Any]) -> dict[str, Any]:
        return {k: row[k] for k in ("reading_id", "client_reading_id", "source_type", "source_id", "ocr_text")}

    def find_reading(self, tx: Any, tenant_id: str, source_type: str, reference: str) -> dict[str, Any] | None:
        for (tenant, client_id), row in self.memory.readings.items():
            if tenant == tenant_id and row["source_type"] == source_type and reference in (client_id, row["reading_id"]):
                return self._reading(row)
        return None

    def readings_by_client_id(self, tx: Any, tenant_id: str, client_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {i: self._reading(self.memory.readings[(tenant_id, i)]) for i in client_ids
                if (tenant_id, i) in self.memory.readings}

    def add(self, tx: Any, tenant_id: str, corrections: Sequence[NewCorrection]) -> list[tuple[str, bool]]:
        results = []
        for new in corrections:
            key = (tenant_id, new.reading_id, new.correction_type, new.corrected_text)
            existing = next((c for c in self.memory.by_reading.get(new.reading_id, ())
                             if (c["tenant_id"], c["reading_id"], c["correction_type"], c["corrected_text"]) == key), None)
            if existing is not None:
                results.append((existing["correction_id"], False))
                continue
            row = {"correction_id": str(uuid.uuid4()), "tenant_id": tenant_id, **new.__dict__,
                   "created_at": new.created_at or datetime.now(UTC)}
            self.memory.add_correction(row)
            results.append((row["correction_id"], True))
        return results
