"""Sync-event intake: validation, and idempotent storage on the client's event id.

The API and the bulk import share both: a replayed event stores nothing twice and gets the same
answer; a different event under a known id is refused (409) and nothing of its batch is stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.adapters.db import Transaction
from shared.errors import Conflict

MAX_BATCH = 1000

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w.:@/-]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z_][\w.]*$")]


class SyncEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    client_event_id: Identifier
    user_id: Identifier
    device_id: Identifier
    domain: Name
    entity_type: Name
    entity_id: Identifier
    fields_changed: list[FieldName] = Field(min_length=1, max_length=64)
    client_last_sync_at: AwareDatetime | None = None
    # When the server received the sync; the intake time when absent (history imports give it).
    received_at: AwareDatetime | None = None
    conflicted: bool = False
    conflict_fields: list[FieldName] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _consistent(self) -> SyncEvent:
        if len(set(self.fields_changed)) != len(self.fields_changed):
            raise ValueError("fields_changed has duplicates")
        if self.conflict_fields and not self.conflicted:
            raise ValueError("conflict_fields given but conflicted is false")
        if not set(self.conflict_fields) <= set(self.fields_changed):
            raise ValueError("conflict_fields must be among fields_changed")
        if self.client_last_sync_at and self.received_at and self.client_last_sync_at > self.received_at:
            raise ValueError("client_last_sync_at is after received_at")
        return self


class SyncEventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[SyncEvent] = Field(min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _unique_ids(self) -> SyncEventBatch:
        ids = [event.client_event_id for event in self.events]
        if len(set(ids)) != len(ids):
            raise ValueError("client_event_id repeats within the batch")
        return self


def parse_intake(payload: Any) -> SyncEventBatch:
    """The API takes one event or {"events": [...]}."""
    if isinstance(payload, dict) and "events" in payload:
        return SyncEventBatch.model_validate(payload)
    return SyncEventBatch(events=[SyncEvent.model_validate(payload)])


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
ON CONFLICT (tenant_id, client_event_id) DO NOTHING
"""
# Staged events whose id was already stored with other content. Run after the insert, so the
# events it just stored match themselves (a missing received_at matches the intake time).
_CHANGED_SQL = """
SELECT i.client_event_id FROM incoming_sync_events i
JOIN sync_events s ON s.tenant_id = CAST(:tenant AS uuid) AND s.client_event_id = i.client_event_id
WHERE (i.user_id, i.device_id, i.domain, i.entity_type, i.entity_id, i.fields_changed, i.client_last_sync_at,
       i.conflicted, i.conflict_fields)
      IS DISTINCT FROM
      (s.user_id, s.device_id, s.domain, s.entity_type, s.entity_id, s.fields_changed, s.client_last_sync_at,
       s.conflicted, s.conflict_fields)
   OR i.received_at <> s.received_at
ORDER BY i.client_event_id
"""
_STORED_IDS_SQL = """
SELECT i.client_event_id, s.event_id FROM incoming_sync_events i
JOIN sync_events s ON s.tenant_id = CAST(:tenant AS uuid) AND s.client_event_id = i.client_event_id
"""


def stage_for_intake(tx: Transaction) -> None:
    """Create (or empty) this transaction's staging table."""
    tx.execute(_STAGE_SQL)
    tx.execute("TRUNCATE incoming_sync_events")


def merge_staged_events(tx: Transaction, tenant_id: str, now: datetime, staged: int) -> int:
    """Store the staged events that are new; return how many were. Raises Conflict (the caller's
    transaction then rolls back) when a known client_event_id arrives with other content."""
    stored = tx.execute(_INSERT_STAGED_SQL, tenant=tenant_id, now=now)
    if stored < staged:  # only then can a known id carry other content
        changed = [row["client_event_id"] for row in tx.fetch_all(_CHANGED_SQL, tenant=tenant_id)]
        if changed:
            raise Conflict(
                f"{len(changed)} client_event_id(s) already stored with other content: {', '.join(changed[:5])}"
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
