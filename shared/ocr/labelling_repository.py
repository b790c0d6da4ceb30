"""Which captured readings still wait for a label, and which were picked for labelling (each at
most once: the selection table's key is the reading)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from shared.adapters.db import Transaction
from shared.errors import Conflict
from shared.ocr.readings_repository import OcrMemory

CANDIDATE_COLUMNS = ("reading_id", "client_reading_id", "source_type", "source_id", "ocr_text", "normalized",
                     "confidence", "error_probability", "reasons", "image_key", "captured_at")


class LabellingRepository(Protocol):
    def lock_selection(self, tx: Any, tenant_id: str) -> None:
        """Hold the tenant's selection until the transaction ends: a second selection at once waits,
        then picks from what the first left."""
        ...

    def candidates(self, tx: Any, tenant_id: str, limit: int) -> list[dict[str, Any]]:
        """Captured readings without a correction, never selected, newest first."""
        ...

    def record(self, tx: Any, tenant_id: str, batch_id: str, manifest_key: str, reading_ids: Sequence[str]) -> None:
        """Record a batch; Conflict if any reading was selected before (nothing is recorded)."""
        ...

    def tenants_with_candidates(self, tx: Any) -> list[str]: ...


_CANDIDATES_SQL = """
SELECT r.reading_id::text AS reading_id, r.client_reading_id, r.source_type, r.source_id, r.ocr_text, r.normalized,
       r.confidence, r.error_probability, r.reasons, r.image_key, r.captured_at
FROM ocr_readings r
WHERE r.tenant_id = CAST(:tenant AS uuid) AND r.captured
  AND NOT EXISTS (SELECT 1 FROM ocr_corrections c WHERE c.reading_id = r.reading_id)
  AND NOT EXISTS (SELECT 1 FROM ocr_label_selections s WHERE s.reading_id = r.reading_id)
ORDER BY r.captured_at DESC, r.reading_id
LIMIT :limit
"""
_BATCH_SQL = """
INSERT INTO ocr_label_batches (batch_id, tenant_id, manifest_key, size)
VALUES (CAST(:batch AS uuid), CAST(:tenant AS uuid), :key, :size)
"""
_SELECT_SQL = """
INSERT INTO ocr_label_selections (reading_id, tenant_id, batch_id, rank)
SELECT CAST(id AS uuid), CAST(:tenant AS uuid), CAST(:batch AS uuid), rank::int
FROM jsonb_array_elements_text(CAST(:ids AS jsonb)) WITH ORDINALITY AS s(id, rank)
"""
_TENANTS_SQL = """
SELECT DISTINCT r.tenant_id::text AS tenant_id FROM ocr_readings r
WHERE r.captured AND NOT EXISTS (SELECT 1 FROM ocr_corrections c WHERE c.reading_id = r.reading_id)
  AND NOT EXISTS (SELECT 1 FROM ocr_label_selections s WHERE s.reading_id = r.reading_id)
ORDER BY 1
"""


class PostgresLabellingRepository:
    def lock_selection(self, tx: Transaction, tenant_id: str) -> None:
        tx.advisory_lock(f"ocr/labelling/{tenant_id}")

    def candidates(self, tx: Transaction, tenant_id: str, limit: int) -> list[dict[str, Any]]:
        return tx.fetch_all(_CANDIDATES_SQL, tenant=tenant_id, limit=limit)

    def record(self, tx: Transaction, tenant_id: str, batch_id: str, manifest_key: str,
               reading_ids: Sequence[str]) -> None:
        tx.execute(_BATCH_SQL, batch=batch_id, tenant=tenant_id, key=manifest_key, size=len(reading_ids))
        tx.execute(_SELECT_SQL, tenant=tenant_id, batch=batch_id, ids=json.dumps(list(reading_ids)))

    def tenants_with_candidates(self, tx: Transaction) -> list[str]:
        return [row["tenant_id"] for row in tx.fetch_all(_TENANTS_SQL)]


class InMemoryLabellingRepository:
    def __init__(self, memory: OcrMemory) -> None:
        self.memory = memory

    def _open(self, row: dict[str, Any]) -> bool:
        return (row["captured"] and row["reading_id"] not in self.memory.selections
                and self.memory.latest_correction(row["reading_id"]) is None)

    def lock_selection(self, tx: Any, tenant_id: str) -> None:
        """One process, one transaction at a time: nothing to wait for."""

    def candidates(self, tx: Any, tenant_id: str, limit: int) -> list[dict[str, Any]]:
        rows = [{k: row[k] for k in CANDIDATE_COLUMNS} for (tenant, _), row in self.memory.readings.items()
                if tenant == tenant_id and self._open(row)]
        rows.sort(key=lambda r: (-r["captured_at"].timestamp(), r["reading_id"]))
        return rows[:limit]

    def record(self, tx: Any, tenant_id: str, batch_id: str, manifest_key: str, reading_ids: Sequence[str]) -> None:
        if any(i in self.memory.selections for i in reading_ids):
            raise Conflict("a reading was already selected for labelling")
        self.memory.batches.append({"batch_id": batch_id, "tenant_id": tenant_id, "manifest_key": manifest_key})
        for rank, reading_id in enumerate(reading_ids, start=1):
            self.memory.selections[reading_id] = {"batch_id": batch_id, "rank": rank}

    def tenants_with_candidates(self, tx: Any) -> list[str]:
        return sorted({tenant for (tenant, _), row in self.memory.readings.items() if self._open(row)})
