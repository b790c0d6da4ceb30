"""Sync-event intake: what a valid sync event is (storage: events_repository.py).

The API and the bulk import share both: a replayed event stores nothing twice and gets the same
answer; a different event under a known id is refused (409) and nothing of its batch is stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.errors import FieldRule
from shared.platform.json_bodies import validate_json_body
from shared.platform.time_range import EARLIEST_TIME, LATEST_TIME
from shared.platform.validation import Identifier, Name, unique_by

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

    @field_validator("client_last_sync_at", "received_at")
    @classmethod
    def _plausible_time(cls, value: datetime | None) -> datetime | None:
        # Compared as aware datetimes: converting year 1 at +14:00 to UTC would overflow.
        if value is not None and not EARLIEST_TIME <= value < LATEST_TIME:
            raise ValueError("must be from 2000-01-01 up to (not including) 2100-01-01 UTC")
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> SyncEvent:
        if len(set(self.fields_changed)) != len(self.fields_changed):
            raise FieldRule("fields_changed", "has duplicates")
        if self.conflict_fields and not self.conflicted:
            raise FieldRule("conflict_fields", "given but conflicted is false")
        if not set(self.conflict_fields) <= set(self.fields_changed):
            raise FieldRule("conflict_fields", "must be among fields_changed")
        if self.client_last_sync_at and self.received_at and self.client_last_sync_at > self.received_at:
            raise FieldRule("client_last_sync_at", "is after received_at")
        # Without received_at the event is stamped with the intake time (given as context), and
        # a last sync after that is a clock in the future.
        intake_time = (info.context or {}).get("intake_time")
        if (self.received_at is None and self.client_last_sync_at is not None and intake_time is not None
                and self.client_last_sync_at > intake_time):
            raise FieldRule("client_last_sync_at", "is after the intake time (received_at is omitted)")
        return self


class SyncEventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: Annotated[list[SyncEvent], Field(min_length=1, max_length=MAX_BATCH), unique_by("client_event_id")]


def parse_intake(payload: Any, intake_time: datetime | None = None) -> SyncEventBatch:
    """The API takes one event or {"events": [...]}, typed as JSON (a boolean is true or false, a
    time an ISO string; the bulk import's text cells are converted instead). `intake_time` is the
    received_at of events that omit it (checked against their client_last_sync_at)."""
    context = {"intake_time": intake_time}
    if isinstance(payload, dict) and "events" in payload:
        return validate_json_body(SyncEventBatch, payload, context)
    return SyncEventBatch(events=[validate_json_body(SyncEvent, payload, context)])
