"""Sync-event intake: what a valid sync event is (storage: events_repository.py).

The API and the bulk import share both: a replayed event stores nothing twice and gets the same
answer; a different event under a known id is refused (409) and nothing of its batch is stored.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.platform.validation import Identifier, Name, ensure_unique

MAX_BATCH = 1000

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
        ensure_unique([item.client_event_id for item in self.events], "client_event_id")
        return self


def parse_intake(payload: Any) -> SyncEventBatch:
    """The API takes one event or {"events": [...]}."""
    if isinstance(payload, dict) and "events" in payload:
        return SyncEventBatch.model_validate(payload)
    return SyncEventBatch(events=[SyncEvent.model_validate(payload)])
