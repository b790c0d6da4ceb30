"""A sample of a tenant's stored attendance events of a window (every labelled one first), for the
demo's replay of fraud scores."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.adapters.db import Transaction

_SAMPLE = """
SELECT * FROM (
    SELECT e.client_event_id, e.occurred_at FROM attendance_events e
    LEFT JOIN fraud_labels l ON l.tenant_id = e.tenant_id AND l.client_event_id = e.client_event_id
    WHERE e.tenant_id = CAST(:tenant AS uuid) AND e.occurred_at >= CAST(:start AS timestamptz)
      AND e.occurred_at < CAST(:end AS timestamptz)
    ORDER BY (l.client_event_id IS NULL), md5(e.client_event_id) LIMIT :limit
) s ORDER BY occurred_at
"""


def sample_events(tx: Transaction, tenant_id: str, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
    return tx.fetch_all(_SAMPLE, tenant=tenant_id, start=start, end=end, limit=limit)


def has_scores(tx: Transaction, tenant_id: str) -> bool:
    return bool(tx.fetch_value("SELECT EXISTS (SELECT 1 FROM fraud_predictions WHERE tenant_id = CAST(:tenant AS uuid))",
                               tenant=tenant_id))
