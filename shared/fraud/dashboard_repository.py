"""What the fraud dashboard reads: a tenant's recent scored events (with outcomes where known) and
the latest live metrics of the model versions that serve it."""

from __future__ import annotations

from typing import Any

from shared.adapters.db import Transaction


def recent_scores(tx: Transaction, tenant_id: str, days: int = 30, limit: int = 5000) -> list[dict[str, Any]]:
    return tx.fetch_all(
        "SELECT probability, outcome, features FROM fraud_predictions"
        " WHERE tenant_id = CAST(:tenant AS uuid) AND variant <> 'shadow'"
        " AND predicted_at >= now() - make_interval(days => :days)"
        " ORDER BY predicted_at DESC LIMIT :limit", tenant=tenant_id, days=days, limit=limit)


def latest_live_metrics(tx: Transaction, labels: list[str]) -> list[dict[str, Any]]:
    return tx.fetch_all(
        "SELECT DISTINCT ON (model_label, window_days) model_label, window_days, computed_at, predictions,"
        " positives, roc_auc, pr_auc, brier FROM model_live_metrics"
        " WHERE kind = 'fraud' AND model_label = ANY(CAST(:labels AS text[]))"
        " ORDER BY model_label, window_days, computed_at DESC", labels=labels)
