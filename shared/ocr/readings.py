"""OCR intake: what a valid reading and a valid correction are (storage: readings_repository.py,
corrections_repository.py). The field names are fixed: outside tools send them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator, model_validator

from shared.errors import FieldRule
from shared.ocr.photo_keys import steps_out
from shared.platform.json_bodies import validate_json_body
from shared.platform.validation import CLOCK_AHEAD, PlausibleTime, unique_by

MAX_BATCH = 1000
SourceType = Literal["meter_reading", "license_plate"]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w.:@/#-]+$")]
ObjectKey = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f]+$")]
OcrText = Annotated[str, StringConstraints(max_length=64, pattern=r"^[^\x00-\x1f]*$")]
CorrectionType = Annotated[str, StringConstraints(min_length=2, max_length=40, pattern=r"^[A-Z][A-Z_]+$")]

# Corrections that record what happened to the meter, or confirm the text: not OCR errors.
NOT_ERRORS = frozenset({"METER_RESET", "METER_REPLACED", "CONFIRMED", "CORRECT"})
RESETS = frozenset({"METER_RESET", "METER_REPLACED"})
# Errors whatever the corrected text says (a wrong unit keeps the digits; unreadable has none).
ALWAYS_ERRORS = frozenset({"UNREADABLE", "WRONG_UNIT"})
# What only a meter has: a plate has no counter to reset and no unit.
METER_ONLY = RESETS | {"WRONG_UNIT"}


class OcrReading(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    client_reading_id: Identifier
    source_type: SourceType
    source_id: Identifier  # the meter's or the gate's id
    ocr_text: OcrText
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    captured_at: PlausibleTime
    unit: Literal["kWh", "m3"] | None = None
    image_key: ObjectKey | None = None

    @field_validator("image_key")
    @classmethod
    def _plain_path(cls, value: str | None) -> str | None:
        # A key is a path inside the tenant's own photo area (or a URI elsewhere): no step out of it.
        if value is not None and steps_out(value):
            raise ValueError("a path without '.' or '..' segments (percent-encoded ones too) or a backslash")
        return value

    @field_validator("captured_at")
    @classmethod
    def _not_after_intake(cls, value: datetime, info: ValidationInfo) -> datetime:
        # A photo cannot be taken after it arrived: a later captured_at is a clock in the future (as
        # sync intake refuses a last sync after the intake time, given as context). The device's own
        # clock stamps it, so a few minutes fast is allowed, as for metric points.
        intake_time = (info.context or {}).get("intake_time")
        if intake_time is not None and value > intake_time + CLOCK_AHEAD:
            raise ValueError("captured_at is more than 5 minutes after the intake time")
        return value

    @model_validator(mode="after")
    def _unit_only_for_meters(self) -> OcrReading:
        if self.unit is not None and self.source_type != "meter_reading":
            raise FieldRule("unit", "is only for meter_reading")
        return self


class OcrReadingBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    readings: Annotated[list[OcrReading], Field(min_length=1, max_length=MAX_BATCH), unique_by("client_reading_id")]


def is_batch(payload: Any) -> bool:
    return isinstance(payload, dict) and "readings" in payload


def parse_readings(payload: Any, intake_time: datetime | None = None) -> OcrReadingBatch:
    """One reading or {"readings": [...]} (a single reading's answer is not a list). With
    `intake_time`, a reading captured after it is refused."""
    context = {"intake_time": intake_time}
    if is_batch(payload):
        return validate_json_body(OcrReadingBatch, payload, context)
    return OcrReadingBatch(readings=[validate_json_body(OcrReading, payload, context)])


def parse_reading_record(record: Any, intake_time: datetime) -> OcrReading:
    """One reading of a file (imports, triage), refused when captured after `intake_time`."""
    return OcrReading.model_validate(record, context={"intake_time": intake_time})


class CorrectionRequest(BaseModel):
    """The seed's body: `source_id` names the reading (its reading_id or client_reading_id)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_type: SourceType
    source_id: Identifier
    corrected_text: OcrText
    correction_type: CorrectionType

    @model_validator(mode="after")
    def _text_unless_unreadable(self) -> CorrectionRequest:
        if not self.corrected_text.strip() and self.correction_type != "UNREADABLE":
            raise FieldRule("corrected_text", "is empty (only UNREADABLE may leave it empty)")
        if self.correction_type in METER_ONLY and self.source_type != "meter_reading":
            raise FieldRule("correction_type", f"{self.correction_type} is only for meter_reading")
        return self
