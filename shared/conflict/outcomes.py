"""Outcome tracking: label each prediction once it is 24 h old, then live metrics per version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from shared.context import AppContext
from shared.metrics import brier_score, roc_auc

OUTCOME_HORIZON = "24 hours"
METRIC_WINDOWS_DAYS = (7, 30)

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


def track_conflict_outcomes(context: AppContext, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    with context.database.transaction() as tx:
        labelled = tx.execute(_LABEL_SQL, now=now)
        rows = tx.fetch_all(
            "SELECT model_label, model_version_id, probability, outcome,"
            " predicted_at >= CAST(:now AS timestamptz) - INTERVAL '7 days' AS in_week"
            " FROM conflict_predictions WHERE outcome IS NOT NULL"
            " AND predicted_at >= CAST(:now AS timestamptz) - INTERVAL '30 days'",
            now=now,
        )
        metrics = _live_metrics(rows)
        for metric in metrics:
            tx.execute(
                "INSERT INTO model_live_metrics (kind, model_label, model_version_id, window_days, computed_at,"
                " predictions, positives, roc_auc, brier) VALUES ('conflict', :label, CAST(:version AS uuid),"
                " :window, :now, :n, :positives, :auc, :brier)",
                label=metric["model_label"], version=metric["model_version_id"], window=metric["window_days"],
                now=now, n=metric["predictions"], positives=metric["positives"], auc=metric["roc_auc"],
                brier=metric["brier"],
            )
    return {"labelled": labelled, "metrics": metrics}


def _live_metrics(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_label: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_label.setdefault(row["model_label"], []).append(row)
    metrics = []
    for label, label_rows in sorted(by_label.items()):
        for window in METRIC_WINDOWS_DAYS:
            chosen = [r for r in label_rows if window == 30 or r["in_week"]]
            if not chosen:
                continue
            outcomes = np.array([bool(r["outcome"]) for r in chosen])
            probabilities = np.array([float(r["probability"]) for r in chosen])
            version = chosen[0]["model_version_id"]
            metrics.append({
                "model_label": label,
                "model_version_id": str(version) if version else None,
                "window_days": window,
                "predictions": len(chosen),
                "positives": int(outcomes.sum()),
                "roc_auc": roc_auc(outcomes, probabilities),
                "brier": brier_score(outcomes, probabilities),
            })
    return metrics
