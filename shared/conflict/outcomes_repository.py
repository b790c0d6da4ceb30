"""What really happened to a conflict prediction: did this user's sync of this entity conflict
within 24 hours of the prediction? PostgreSQL labels every due prediction in one statement."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.adapters.db import Transaction
from shared.platform.prediction_log import InMemoryPredictionLog

OUTCOME_HORIZON = timedelta(hours=24)
PREDICTIONS_TABLE = "conflict_predictions"
SUBJECT_COLUMNS = ("user_id", "domain", "entity_type", "entity_id", "fields", "device_id", "client_last_sync_at")

# Set-based: one UPDATE labels every due prediction (shadow rows too: they get live metrics of
# their own). Only unlabelled rows are touched, so a re-run labels nothing twice.
_LABEL_SQL = """
UPDATE conflict_predictions p
SET outcome = EXISTS (
        SELECT 1 FROM sync_events e
        WHERE e.tenant_id = p.tenant_id AND e.user_id = p.user_id AND e.domain = p.domain
          AND e.entity_type = p.entity_type AND e.entity_id = p.entity_id
          AND e.received_at > p.predicted_at AND e.received_at <= p.predicted_at + CAST(:horizon AS interval)
          AND e.conflicted),
    outcome_at = :now
WHERE p.outcome IS NULL AND p.predicted_at <= CAST(:now AS timestamptz) - CAST(:horizon AS interval)
"""


class PostgresConflictOutcomes:
    def label_due(self, session: Transaction, now: datetime) -> int:
        return session.execute(_LABEL_SQL, now=now, horizon=f"{int(OUTCOME_HORIZON.total_seconds())} seconds")


class InMemoryConflictOutcomes:
    """The fake: conflicts as (user_id, entity_id, when) facts, matched like the SQL matches them."""

    def __init__(self, log: InMemoryPredictionLog) -> None:
        self._log = log
        self.conflicts: list[tuple[str, str, datetime]] = []

    def label_due(self, session: Any, now: datetime) -> int:
        labelled = 0
        for row in self._log.rows:
            if row["outcome"] is None and row["predicted_at"] <= now - OUTCOME_HORIZON:
                row["outcome"] = any(
                    user == row["user_id"] and entity == row["entity_id"]
                    and row["predicted_at"] < at <= row["predicted_at"] + OUTCOME_HORIZON
                    for user, entity, at in self.conflicts
                )
                row["outcome_at"] = now
                labelled += 1
        return labelled
