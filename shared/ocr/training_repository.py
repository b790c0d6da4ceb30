"""The error model's training source: settled readings of a window with their labels, and the
history they are judged against (readings_repository.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.adapters.db import Database
from shared.ocr.learning import SETTLE, LabelledReading, reading_from_row, training_set
from shared.ocr.readings_repository import InMemoryReadingRepository, OcrMemory, PostgresReadingRepository
from shared.platform.kinds import TrainingSet

_ROWS_SQL = """
SELECT r.tenant_id::text AS tenant_id, r.client_reading_id, r.source_type, r.source_id, r.ocr_text, r.confidence,
       r.captured_at, r.unit, r.image_key, c.is_error
FROM ocr_readings r
LEFT JOIN LATERAL (SELECT k.is_error FROM ocr_corrections k WHERE k.reading_id = r.reading_id
                   ORDER BY k.seq DESC LIMIT 1) c ON true
WHERE (CAST(:tenant AS uuid) IS NULL OR r.tenant_id = CAST(:tenant AS uuid))
  AND r.captured_at >= :start AND r.captured_at < :end
  AND (c.is_error IS NOT NULL OR r.captured_at < :settled)
ORDER BY r.captured_at
"""
_COUNTRIES_SQL = "SELECT tenant_id::text AS tenant_id, plate_countries FROM ocr_settings"


class PostgresOcrTrainingSource:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._readings = PostgresReadingRepository()

    def training_set(self, tenant_id: str | None, start: datetime, end: datetime) -> TrainingSet:
        with self._database.transaction() as tx:
            rows = tx.fetch_all(_ROWS_SQL, tenant=tenant_id, start=start, end=end, settled=end - SETTLE)
            snapshot = self._readings.history(tx, tenant_id, None, start, end)
            countries = {row["tenant_id"]: tuple(row["plate_countries"]) for row in tx.fetch_all(_COUNTRIES_SQL)}
        labelled = [LabelledReading(row["tenant_id"], reading_from_row(row), bool(row["is_error"])) for row in rows]
        return training_set(labelled, snapshot, countries, start, end)


class InMemoryOcrTrainingSource:
    def __init__(self, memory: OcrMemory) -> None:
        self._memory = memory
        self._readings = InMemoryReadingRepository(memory)

    def training_set(self, tenant_id: str | None, start: datetime, end: datetime) -> TrainingSet:
        labelled = []
        for (tenant, _), row in self._memory.readings.items():
            latest: dict[str, Any] | None = self._memory.latest_correction(row["reading_id"])
            if tenant_id not in (None, tenant) or not start <= row["captured_at"] < end:
                continue
            if latest is None and row["captured_at"] >= end - SETTLE:
                continue
            labelled.append(LabelledReading(tenant, reading_from_row(row), bool(latest and latest["is_error"])))
        snapshot = self._readings.history(None, tenant_id, None, start, end)
        countries = {t: s.plate_countries for t, s in self._memory.settings.items()}
        return training_set(labelled, snapshot, countries, start, end)
