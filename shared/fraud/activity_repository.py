"""What the fraud dashboard reads besides the summary: the false-positive rate per day at a
threshold, and a tenant's recent high scores."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.adapters.db import Transaction

_DAILY = """
SELECT date_trunc('day', predicted_at) AS day, count(*) AS scored,
       count(*) FILTER (WHERE outcome IS NOT NULL) AS with_outcome,
       count(*) FILTER (WHERE probability >= :threshold AND outcome = false) AS false_positives,
       count(*) FILTER (WHERE probability < :threshold AND outcome = false) AS true_negatives,
       count(*) FILTER (WHERE probability >= :threshold AND outcome = true) AS true_positives
FROM fraud_predictions
WHERE tenant_id = CAST(:tenant AS uuid) AND variant <> 'shadow' AND predicted_at >= CAST(:since AS timestamptz)
GROUP BY 1 ORDER BY 1
"""
_HIGH = """
SELECT prediction_id::text AS prediction_id, client_event_id, user_id, site_id, occurred_at, predicted_at,
       probability, model_label, features, outcome
FROM fraud_predictions
WHERE tenant_id = CAST(:tenant AS uuid) AND variant <> 'shadow' AND probability >= :threshold
ORDER BY predicted_at DESC LIMIT :limit
"""


def daily_rates(tx: Transaction, tenant_id: str, since: datetime, threshold: float) -> list[dict[str, Any]]:
    return tx.fetch_all(_DAILY, tenant=tenant_id, since=since, threshold=threshold)


def high_scores(tx: Transaction, tenant_id: str, threshold: float, limit: int) -> list[dict[str, Any]]:
    rows = tx.fetch_all(_HIGH, tenant=tenant_id, threshold=threshold, limit=limit)
    for row in rows:
        if isinstance(row["features"], str):
            row["features"] = json.loads(row["features"])
    return rows
