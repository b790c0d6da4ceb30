"""What really happened to a fraud score: the investigator's label when there is one; legitimate
once the event is 30 days old without one. A later label overrides the 30-day default."""

from __future__ import annotations

from datetime import datetime

from shared.adapters.db import Transaction

PREDICTIONS_TABLE = "fraud_predictions"
SUBJECT_COLUMNS = ("client_event_id", "user_id", "site_id", "occurred_at")

_LABEL_SQL = """
UPDATE fraud_predictions p SET outcome = d.outcome, outcome_at = :now
FROM (
    SELECT p2.prediction_id, COALESCE(l.is_fraud, false) AS outcome
    FROM fraud_predictions p2
    LEFT JOIN fraud_labels l ON l.tenant_id = p2.tenant_id AND l.client_event_id = p2.client_event_id
    WHERE p2.client_event_id IS NOT NULL
      AND ((p2.outcome IS NULL AND (l.is_fraud IS NOT NULL OR p2.occurred_at <= CAST(:now AS timestamptz) - INTERVAL '30 days'))
           OR (l.is_fraud IS NOT NULL AND p2.outcome IS DISTINCT FROM l.is_fraud))
) d
WHERE p.prediction_id = d.prediction_id
"""


class PostgresFraudOutcomes:
    def label_due(self, session: Transaction, now: datetime) -> int:
        return session.execute(_LABEL_SQL, now=now)
