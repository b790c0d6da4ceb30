"""A sample of a tenant's stored sync events of a window, for the demo's replay of predictions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.adapters.db import Transaction

_SAMPLE = """
SELECT * FROM (
    SELECT user_id, device_id, domain, entity_type, entity_id, fields_changed, client_last_sync_at, received_at
    FROM sync_events
    WHERE tenant_id = CAST(:tenant AS uuid) AND received_at >= CAST(:start AS timestamptz)
      AND received_at < CAST(:end AS timestamptz)
    ORDER BY md5(client_event_id) LIMIT :limit
) s ORDER BY received_at
"""


def sample_events(tx: Transaction, tenant_id: str, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
    return tx.fetch_all(_SAMPLE, tenant=tenant_id, start=start, end=end, limit=limit)


def has_predictions(tx: Transaction, tenant_id: str) -> bool:
    return bool(tx.fetch_value("SELECT EXISTS (SELECT 1 FROM conflict_predictions WHERE tenant_id = CAST(:tenant AS uuid))",
                               tenant=tenant_id))
