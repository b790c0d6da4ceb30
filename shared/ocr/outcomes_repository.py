"""What really happened to an error score: was the reading corrected as an OCR error? A score is
labelled once a correction arrived or, without one, after a week (then it counts as right)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.adapters.db import Transaction
from shared.platform.prediction_log import InMemoryPredictionLog

if TYPE_CHECKING:  # at run time only the in-memory outcomes need it, and are given one
    from shared.ocr.readings_repository import OcrMemory

OUTCOME_HORIZON = timedelta(days=7)
PREDICTIONS_TABLE = "ocr_predictions"
SUBJECT_COLUMNS = ("reading_id", "source_type", "source_id")

_LATEST_IS_ERROR = """(SELECT c.is_error FROM ocr_corrections c WHERE c.reading_id = p.reading_id
                       ORDER BY c.seq DESC LIMIT 1)"""
_LABEL_SQL = f"""
UPDATE ocr_predictions p
SET outcome = COALESCE({_LATEST_IS_ERROR}, false), outcome_at = :now
WHERE p.outcome IS NULL
  AND (p.predicted_at <= CAST(:now AS timestamptz) - CAST(:horizon AS interval)
       OR EXISTS (SELECT 1 FROM ocr_corrections c WHERE c.reading_id = p.reading_id))
"""


class PostgresOcrOutcomes:
    def label_due(self, session: Transaction, now: datetime) -> int:
        return session.execute(_LABEL_SQL, now=now, horizon=f"{int(OUTCOME_HORIZON.total_seconds())} seconds")


class InMemoryOcrOutcomes:
    def __init__(self, log: InMemoryPredictionLog, memory: OcrMemory) -> None:
        self._log = log
        self._memory = memory

    def label_due(self, session: Any, now: datetime) -> int:
        labelled = 0
        for row in self._log.rows:
            latest = self._memory.latest_correction(row["reading_id"])
            if row["outcome"] is None and (latest is not None or row["predicted_at"] <= now - OUTCOME_HORIZON):
                row["outcome"], row["outcome_at"] = bool(latest and latest["is_error"]), now
                labelled += 1
        return labelled
