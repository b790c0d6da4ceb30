"""Sync-event intake: validation, and idempotent storage on the client's event id.

The API and the bulk import share both: a replayed event stores nothing twice and gets the same
answer; a different event under a known id is refused (409) and nothing of its batch is stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.db import Transaction
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

    def content_hash(self) -> str:
        """Identity of the event as submitted, to tell a replay from a different event."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


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


_STORE_SQL = """
WITH incoming AS (
    SELECT * FROM jsonb_to_recordset(CAST(:batch AS jsonb)) AS r(
        client_event_id text, user_id text, device_id text, domain text, entity_type text,
        entity_id text, fields_changed text[], client_last_sync_at timestamptz,
        received_at timestamptz, conflicted boolean, conflict_fields text[], content_hash text)
), inserted AS (
    INSERT INTO sync_events (tenant_id, client_event_id, user_id, device_id, domain, entity_type,
        entity_id, fields_changed, client_last_sync_at, received_at, conflicted, conflict_fields,
        content_hash)
    SELECT CAST(:tenant AS uuid), client_event_id, user_id, device_id, domain, entity_type, entity_id,
        fields_changed, client_last_sync_at, COALESCE(received_at, :now), conflicted,
        COALESCE(conflict_fields, '{}'), decode(content_hash, 'hex')
    FROM incoming
    ON CONFLICT (tenant_id, client_event_id) DO NOTHING
    RETURNING event_id, client_event_id
)
SELECT i.client_event_id,
       COALESCE(n.event_id, s.event_id) AS event_id,
       n.event_id IS NULL AND encode(s.content_hash, 'hex') <> i.content_hash AS differs
FROM incoming i
LEFT JOIN inserted n ON n.client_event_id = i.client_event_id
LEFT JOIN sync_events s ON n.event_id IS NULL AND s.tenant_id = CAST(:tenant AS uuid)
    AND s.client_event_id = i.client_event_id
"""


def _row(event: SyncEvent) -> dict[str, Any]:
    data = event.model_dump(mode="json")
    data["content_hash"] = event.content_hash()
    return data


def store_sync_events(
    tx: Transaction, tenant_id: str, events: Sequence[SyncEvent], now: datetime
) -> list[dict[str, Any]]:
    """Store what is new; answer [{client_event_id, event_id}] in input order, the same for a
    replay. Raises Conflict (rolling the batch back) if a known id arrives with other content."""
    rows = tx.fetch_all(_STORE_SQL, batch=json.dumps([_row(e) for e in events]), tenant=tenant_id, now=now)
    differing = sorted(row["client_event_id"] for row in rows if row["differs"])
    if differing:
        raise Conflict(
            f"{len(differing)} client_event_id(s) already stored with other content: {', '.join(differing[:5])}"
        )
    by_id = {row["client_event_id"]: row["event_id"] for row in rows}
    return [{"client_event_id": e.client_event_id, "event_id": by_id[e.client_event_id]} for e in events]
