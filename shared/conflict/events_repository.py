"""Where sync events are stored: idempotent on the client's event id, through one staging path
that the API (a JSON recordset) and the bulk import (COPY) share."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.adapters.db import Transaction
from shared.conflict.events import SyncEvent
from shared.errors import Conflict, FieldProblem

# Every intake lands in a per-transaction staging table first (the API from a JSON recordset, the
# bulk import by COPY), then one merge statement stores what is new. The content hash is computed
# in SQL from the staged columns, so both paths agree on what "the same event" is.
_STAGE_SQL = """
CREATE TEMP TABLE IF NOT EXISTS incoming_sync_events (
    client_event_id text NOT NULL, user_id text NOT NULL, device_id text NOT NULL, domain text NOT NULL,
    entity_type text NOT NULL, entity_id text NOT NULL, fields_changed text[] NOT NULL,
    client_last_sync_at timestamptz, received_at timestamptz, conflicted boolean NOT NULL,
    conflict_fields text[] NOT NULL
) ON COMMIT DROP
"""
STAGED_COLUMNS = (
    "client_event_id", "user_id", "device_id", "domain", "entity_type", "entity_id", "fields_changed",
    "client_last_sync_at", "received_at", "conflicted", "conflict_fields",
)
_STAGE_FROM_JSON_SQL = f"""
INSERT INTO incoming_sync_events ({", ".join(STAGED_COLUMNS)})
SELECT {", ".join(STAGED_COLUMNS)} FROM jsonb_to_recordset(CAST(:batch AS jsonb)) AS r(
    client_event_id text, user_id text, device_id text, domain text, entity_type text, entity_id text,
    fields_changed text[], client_last_sync_at timestamptz, received_at timestamptz, conflicted boolean,
    conflict_fields text[])
"""
COPY_INTO_STAGE_SQL = f"COPY incoming_sync_events ({', '.join(STAGED_COLUMNS)}) FROM STDIN WITH (FORMAT csv)"
_INSERT_STAGED_SQL = """
INSERT INTO sync_events (tenant_id, client_event_id, user_id, device_id, domain, entity_type, entity_id,
    fields_changed, client_last_sync_at, received_at, conflicted, conflict_fields)
SELECT CAST(:tenant AS uuid), client_event_id, user_id, device_id, domain, entity_type, entity_id,
    fields_changed, client_last_sync_at, COALESCE(received_at, :now), conflicted, conflict_fields
FROM incoming_sync_events
ORDER BY client_event_id  -- one lock order: batches of the same ids in other orders cannot deadlock
ON CONFLICT (tenant_id, client_event_id) DO NOTHING
"""


def _as_set(fields: str) -> str:
    """A field list compared as the set it is: the same fields in another order are the same event."""
    return f"ARRAY(SELECT f FROM unnest({fields}) AS f ORDER BY f)"


# Staged events whose id was already stored with other content. Run after the insert, so the
# events it just stored match themselves (a missing received_at matches the intake time).
_CHANGED_SQL = f"""
SELECT i.client_event_id FROM incoming_sync_events i
JOIN sync_events s ON s.tenant_id = CAST(:tenant AS uuid) AND s.client_event_id = i.client_event_id
WHERE (i.user_id, i.device_id, i.domain, i.entity_type, i.entity_id, {_as_set("i.fields_changed")},
       i.client_last_sync_at, i.conflicted, {_as_set("i.conflict_fields")})
      IS DISTINCT FROM
      (s.user_id, s.device_id, s.domain, s.entity_type, s.entity_id, {_as_set("s.fields_changed")},
       s.client_last_sync_at, s.conflicted, {_as_set("s.conflict_fields")})
   OR i.received_at <> s.received_at
ORDER BY i.client_event_id
"""
# The answer's event_id is the random event_uuid (never the internal sequence), the same for a replay.
_STORED_IDS_SQL = """
SELECT i.client_event_id, s.event_uuid::text AS event_id FROM incoming_sync_events i
JOIN sync_events s ON s.tenant_id = CAST(:tenant AS uuid) AND s.client_event_id = i.client_event_id
"""


def stage_for_intake(tx: Transaction) -> None:
    """Create (or empty) this transaction's staging table."""
    tx.execute(_STAGE_SQL)
    tx.execute("TRUNCATE incoming_sync_events")


def copy_into_stage(tx: Transaction, csv_chunk: Any) -> None:
    """Bulk-load a CSV chunk (STAGED_COLUMNS order) into the staging table."""
    tx.copy_in(COPY_INTO_STAGE_SQL, csv_chunk)


def clear_stage(tx: Transaction) -> None:
    tx.execute("TRUNCATE incoming_sync_events")


def merge_staged_events(tx: Transaction, tenant_id: str, now: datetime, staged: int) -> int:
    """Store the staged events that are new; return how many were. Raises Conflict (the caller's
    transaction then rolls back) when a known client_event_id arrives with other content."""
    stored = tx.execute(_INSERT_STAGED_SQL, tenant=tenant_id, now=now)
    if stored < staged:  # only then can a known id carry other content
        changed = [row["client_event_id"] for row in tx.fetch_all(_CHANGED_SQL, tenant=tenant_id)]
        if changed:
            raise Conflict(
                f"{len(changed)} client_event_id(s) already stored with other content: {', '.join(changed[:5])}",
                [FieldProblem(cid, "already stored with other content") for cid in changed],
            )
    return stored


def store_sync_events(
    tx: Transaction, tenant_id: str, events: Sequence[SyncEvent], now: datetime
) -> list[dict[str, Any]]:
    """Store what is new; answer [{client_event_id, event_id}] in input order, the same for a
    replay. Raises Conflict (rolling the batch back) if a known id arrives with other content."""
    stage_for_intake(tx)
    tx.execute(_STAGE_FROM_JSON_SQL, batch=json.dumps([e.model_dump(mode="json") for e in events]))
    merge_staged_events(tx, tenant_id, now, staged=len(events))
    by_id = {row["client_event_id"]: row["event_id"] for row in tx.fetch_all(_STORED_IDS_SQL, tenant=tenant_id)}
    return [{"client_event_id": e.client_event_id, "event_id": by_id[e.client_event_id]} for e in events]


def count_sync_events(tx: Transaction) -> int:
    return int(tx.fetch_value("SELECT count(*) FROM sync_events"))
