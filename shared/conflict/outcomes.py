"""Outcome tracking: label each prediction once it is 24 h old, then live metrics per version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.context import AppContext

OUTCOME_HORIZON = "24 hours"

# Set-based: one UPDATE labels every due prediction. Only unlabelled rows are touched, so a
# re-run labels nothing twice.
_LABEL_SQL = f"""
UPDATE conflict_predictions p
SET outcome = EXISTS (
        SELECT 1 FROM sync_events e
        WHERE e.tenant_id = p.tenant_id AND e.user_id = p.user_id AND e.domain = p.domain
          AND e.entity_type = p.entity_type AND e.entity_id = p.entity_id
          AND e.received_at > p.predicted_at AND e.received_at <= p.predicted_at + INTERVAL '{OUTCOME_HORIZON}'
          AND e.conflicted),
    outcome_at = :now
WHERE p.outcome IS NULL AND p.predicted_at <= CAST(:now AS timestamptz) - INTERVAL '{OUTCOME_HORIZON}'
"""


# Live metrics per model version and window, computed where the rows are: ROC-AUC by the rank-sum
# (Mann-Whitney) formula, ties given their average rank, and Brier as a mean; one statement.
_LIVE_METRICS_SQL = """
WITH windows (window_days) AS (VALUES (7), (30)),
labelled AS (
    SELECT w.window_days, p.model_label, p.model_version_id::text AS model_version_id, p.probability,
           p.outcome::int AS outcome
    FROM conflict_predictions p
    JOIN windows w ON p.predicted_at >= CAST(:now AS timestamptz) - make_interval(days => w.window_days)
    WHERE p.outcome IS NOT NULL
),
ranked AS (
    SELECT *, rank() OVER (PARTITION BY window_days, model_label ORDER BY probability) AS low_rank,
           count(*) OVER (PARTITION BY window_days, model_label, probability) AS ties
    FROM labelled
),
per_model AS (
    SELECT window_days, model_label, max(model_version_id) AS model_version_id,
           count(*) AS predictions, sum(outcome) AS positives,
           sum(low_rank + (ties - 1) / 2.0) FILTER (WHERE outcome = 1) AS positive_rank_sum,
           avg(power(probability - outcome, 2)) AS brier
    FROM ranked GROUP BY window_days, model_label
)
INSERT INTO model_live_metrics (kind, model_label, model_version_id, window_days, computed_at, predictions,
    positives, roc_auc, brier)
SELECT 'conflict', model_label, CAST(model_version_id AS uuid), window_days, :now, predictions, positives,
       CASE WHEN positives > 0 AND positives < predictions
            THEN (positive_rank_sum - positives * (positives + 1) / 2.0) / (positives * (predictions - positives))
       END,
       brier
FROM per_model
RETURNING model_label, model_version_id::text AS model_version_id, window_days, predictions, positives,
          roc_auc::float8 AS roc_auc, brier::float8 AS brier
"""


def track_conflict_outcomes(context: AppContext, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    with context.database.transaction() as tx:
        labelled = tx.execute(_LABEL_SQL, now=now)
        metrics = tx.fetch_all(_LIVE_METRICS_SQL, now=now)
    metrics.sort(key=lambda m: (m["model_label"], m["window_days"]))
    return {"labelled": labelled, "metrics": metrics}
