"""What the fraud dashboard reads: a tenant's recent scored events (with outcomes where known, and
the decision each was answered with)."""

from __future__ import annotations

from typing import Any

from shared.adapters.db import Transaction


def recent_scores(tx: Transaction, tenant_id: str, days: int = 30, limit: int = 5000) -> list[dict[str, Any]]:
    return tx.fetch_all(
        "SELECT probability, outcome, features, risk_level AS decision FROM fraud_predictions"
        " WHERE tenant_id = CAST(:tenant AS uuid) AND variant <> 'shadow'"
        " AND predicted_at >= now() - make_interval(days => :days)"
        " ORDER BY predicted_at DESC LIMIT :limit", tenant=tenant_id, days=days, limit=limit)
