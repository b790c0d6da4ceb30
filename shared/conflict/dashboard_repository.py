"""What the conflict dashboard reads from a tenant's prediction log: labelled scores per model and
day (for live ROC-AUC and Brier), and of the answers (not a shadow's scores) predictions per day and
risk level, outcomes per day, and the calibration table by decile of the predicted probability."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.adapters.db import Transaction

_WINDOW = ("tenant_id = CAST(:tenant AS uuid) AND predicted_at >= CAST(:since AS timestamptz)")
# The answers the tenant got (champion, challenger, heuristic): a shadow's scores were never answers.
_ANSWERED = _WINDOW + " AND variant <> 'shadow'"

_LABELLED_BY_DAY = f"""
SELECT date_trunc('day', predicted_at) AS day, model_label,
       array_to_string(array_agg(probability), ',') AS probabilities,
       array_to_string(array_agg(CAST(outcome AS integer)), ',') AS outcomes
FROM conflict_predictions WHERE {_WINDOW} AND outcome IS NOT NULL
GROUP BY 1, 2 ORDER BY 1, 2
"""
_BY_RISK = f"""
SELECT date_trunc('day', predicted_at) AS day, risk_level, count(*) AS predictions
FROM conflict_predictions WHERE {_ANSWERED} GROUP BY 1, 2 ORDER BY 1, 2
"""
_OUTCOMES = f"""
SELECT date_trunc('day', predicted_at) AS day, count(*) FILTER (WHERE outcome) AS conflicted,
       count(*) FILTER (WHERE NOT outcome) AS clean, count(*) FILTER (WHERE outcome IS NULL) AS pending
FROM conflict_predictions WHERE {_ANSWERED} GROUP BY 1 ORDER BY 1
"""
_CALIBRATION = f"""
SELECT decile, count(*) AS predictions, avg(probability) AS predicted, avg(CAST(outcome AS integer)) AS observed
FROM (SELECT probability, outcome, ntile(10) OVER (ORDER BY probability) AS decile
      FROM conflict_predictions WHERE {_ANSWERED} AND outcome IS NOT NULL) d
GROUP BY decile ORDER BY decile
"""


def labelled_by_day(tx: Transaction, tenant_id: str, since: datetime) -> list[dict[str, Any]]:
    """Per day and model label: the probabilities and outcomes (0/1) of labelled predictions."""
    rows = tx.fetch_all(_LABELLED_BY_DAY, tenant=tenant_id, since=since)
    for row in rows:
        row["probabilities"] = [float(v) for v in row["probabilities"].split(",")]
        row["outcomes"] = [int(v) for v in row["outcomes"].split(",")]
    return rows


def predictions_by_risk(tx: Transaction, tenant_id: str, since: datetime) -> list[dict[str, Any]]:
    return tx.fetch_all(_BY_RISK, tenant=tenant_id, since=since)


def outcomes_by_day(tx: Transaction, tenant_id: str, since: datetime) -> list[dict[str, Any]]:
    return tx.fetch_all(_OUTCOMES, tenant=tenant_id, since=since)


def calibration(tx: Transaction, tenant_id: str, since: datetime) -> list[dict[str, Any]]:
    return tx.fetch_all(_CALIBRATION, tenant=tenant_id, since=since)
