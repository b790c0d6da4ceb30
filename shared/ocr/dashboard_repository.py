"""The latest labelling batch of a tenant, with how many of its readings have been corrected since."""

from __future__ import annotations

from typing import Any

from shared.adapters.db import Transaction

_LATEST_BATCH = """
SELECT b.batch_id::text AS batch_id, b.size, b.manifest_key, b.created_at,
       (SELECT count(*) FROM ocr_label_selections s JOIN ocr_corrections c ON c.reading_id = s.reading_id
        WHERE s.batch_id = b.batch_id) AS labelled
FROM ocr_label_batches b WHERE b.tenant_id = CAST(:tenant AS uuid)
ORDER BY b.created_at DESC LIMIT 1
"""


def latest_batch(tx: Transaction, tenant_id: str) -> dict[str, Any] | None:
    row = tx.fetch_one(_LATEST_BATCH, tenant=tenant_id)
    if row is not None:
        row["labelled"] = int(row["labelled"])
    return row
