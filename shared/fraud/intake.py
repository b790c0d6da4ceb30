"""What valid fraud-loop input is: sites, holidays, attendance events and investigators' labels."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from shared.errors import FieldRule
from shared.platform.json_bodies import validate_json_body
from shared.platform.time_range import EARLIEST_TIME, LATEST_TIME
from shared.platform.validation import Identifier, PastTime, unique_by

MAX_BATCH = 1000
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    site_id: Identifier
    latitude: Latitude
    longitude: Longitude
    radius_m: float = Field(gt=0, le=100_000, allow_inf_nan=False)
    timezone: str = Field(min_length=1, max_length=64)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value


# Within the range of every other time a client gives (2000 up to 2100).
HolidayDate = Annotated[date, Field(ge=EARLIEST_TIME.date(), lt=LATEST_TIME.date())]


class HolidayIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    date: HolidayDate
    name: str = Field(min_length=1, max_length=200)


class AttendanceEventIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    client_event_id: Identifier
    user_id: Identifier
    site_id: Identifier
    device_id: Identifier
    event_type: Literal["check_in", "check_out"]
    # Local-time features need a real calendar year, and a check-in in the future would be every
    # later event's "previous" one: a clock that is wrong.
    occurred_at: PastTime
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    gps_accuracy_m: float | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False)
    face_match_confidence: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    biometric_verified: bool | None = None

    @model_validator(mode="after")
    def _position_complete(self) -> AttendanceEventIn:
        if (self.latitude is None) != (self.longitude is None):
            missing = "longitude" if self.longitude is None else "latitude"
            raise FieldRule(missing, "missing: latitude and longitude come together or not at all")
        return self


class SiteBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # One upsert cannot touch a row twice (PostgreSQL refuses it): a repeat is named instead.
    sites: Annotated[list[SiteIn], Field(min_length=1, max_length=MAX_BATCH), unique_by("site_id")]


class AttendanceBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: Annotated[list[AttendanceEventIn], Field(min_length=1, max_length=MAX_BATCH), unique_by("client_event_id")]


def _verdict(value: Any) -> Any:
    """A verdict is true/false or, as README gives it, 1 (confirmed) / 0 (cleared); nothing else
    ("1", "yes") in a JSON body. An import file's text cells are converted as any boolean is."""
    return bool(value) if type(value) is int and value in (0, 1) else value


class FraudLabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    client_event_id: Identifier
    is_fraud: Annotated[bool, BeforeValidator(_verdict)]  # 1 confirmed, 0 cleared


class FraudLabelBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Two verdicts on one event in one batch contradict or repeat each other: neither may win silently.
    labels: Annotated[list[FraudLabelIn], Field(min_length=1, max_length=MAX_BATCH), unique_by("client_event_id")]


def parse_sites(payload: Any) -> SiteBatch:
    """One site, or {"sites": [...]}."""
    if isinstance(payload, dict) and "sites" in payload:
        return validate_json_body(SiteBatch, payload)
    return SiteBatch(sites=[validate_json_body(SiteIn, payload)])


def parse_events(payload: Any) -> AttendanceBatch:
    """One event, or {"events": [...]}."""
    if isinstance(payload, dict) and "events" in payload:
        return validate_json_body(AttendanceBatch, payload)
    return AttendanceBatch(events=[validate_json_body(AttendanceEventIn, payload)])


def parse_labels(payload: Any) -> FraudLabelBatch:
    """One label, or {"labels": [...]}."""
    if isinstance(payload, dict) and "labels" in payload:
        return validate_json_body(FraudLabelBatch, payload)
    return FraudLabelBatch(labels=[validate_json_body(FraudLabelIn, payload)])
