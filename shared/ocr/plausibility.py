"""Plausibility of a reading against its source's own history, and the features the error model
and its heuristic read.

History is whatever was stored strictly before the reading (`captured_at` earlier), with each
stored reading at its best known value: corrected when a correction fixed it, left out when it was
unreadable, and a recorded meter replacement or reset starting the meter's history afresh. The
same `HistoryIndex` serves the API, triage (which adds each processed reading, as the API would
have stored it) and training (every labelled reading as of its own time), so the three agree.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.ocr.normalise import (
    DEFAULT_PLATE_COUNTRIES,
    MeterValue,
    canonical_plate,
    confusion_repairs,
    parse_meter,
    plate_countries,
    within_one_edit,
)
from shared.ocr.readings import OcrReading

FEATURE_NAMES: tuple[str, ...] = (
    "confidence_error",  # 1 - confidence: the seed's whole signal
    "confidence_logit",  # log-odds of an error by the confidence, for a calibrated fit
    "is_plate",
    "plate_confidence_logit",  # the plate's own calibration slope (per source type)
    "unparseable",
    "repaired",  # letters read as digits to get a number
    "short_history",  # too few earlier readings to judge consumption
    "backwards",  # below the meter's previous reading, no reset recorded
    "consumption_excess",  # robust z of the implied daily consumption beyond 2, capped
    "digit_count_change",
    "unit_mismatch",
    "plate_no_format",
    "plate_fixable",  # one confusable-character swap makes it fit a format
    "plate_near_frequent",  # unknown here, one edit from a plate often seen at this gate
    "plate_seen",  # log1p(times this plate was seen at this gate)
)
METER_HISTORY = 12  # earlier readings looked at (since the last reset)
FREQUENT_PLATE = 3  # seen this often at a gate, a plate is "often seen"
_MIN_DAYS = 0.25  # two readings on one day: consumption per quarter day at most


@dataclass(frozen=True)
class MeterEvent:
    at: datetime
    client_reading_id: str
    value: MeterValue | None  # best known; None when unreadable
    unit: str | None
    reset: bool = False  # a replacement or reset was recorded at this reading


@dataclass(frozen=True)
class PlateEvent:
    at: datetime
    client_reading_id: str
    plate: str  # best known canonical plate


@dataclass
class HistorySnapshot:
    """Stored history as a repository reads it, keyed by (tenant, source id)."""

    meters: dict[tuple[str, str], list[MeterEvent]] = field(default_factory=dict)
    # Counts of plates per gate before the first time of interest, and the events after it.
    plate_counts: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    plates: dict[tuple[str, str], list[PlateEvent]] = field(default_factory=dict)


def _meter_order(event: MeterEvent) -> tuple[datetime, str]:
    return event.at, event.client_reading_id


class HistoryIndex:
    """History as of any time, for readings taken in `captured_at` order."""

    def __init__(self, snapshot: HistorySnapshot) -> None:
        # Readings at the same time in one order whatever order they were read in (by client id).
        self._meters = {k: sorted(v, key=_meter_order) for k, v in snapshot.meters.items()}
        self._plate_counts = {k: Counter(v) for k, v in snapshot.plate_counts.items()}
        self._plates = {k: sorted(v, key=lambda e: e.at) for k, v in snapshot.plates.items()}
        self._plate_cursor: dict[tuple[str, str], int] = defaultdict(int)
        self._stored = {e.client_reading_id for events in snapshot.meters.values() for e in events}
        self._stored |= {e.client_reading_id for events in snapshot.plates.values() for e in events}

    def meter_before(self, key: tuple[str, str], at: datetime) -> list[MeterEvent]:
        events = self._meters.get(key, [])
        end = bisect.bisect_left([e.at for e in events], at)
        recent: list[MeterEvent] = []
        for event in reversed(events[:end]):
            if event.value is not None:
                recent.append(event)
            if event.reset or len(recent) == METER_HISTORY:
                break
        return recent[::-1]

    def plates_before(self, key: tuple[str, str], at: datetime) -> Counter[str]:
        """Counts at this gate before `at`; calls must come in time order (the cursor moves on)."""
        counts = self._plate_counts.setdefault(key, Counter())
        events, cursor = self._plates.get(key, []), self._plate_cursor[key]
        while cursor < len(events) and events[cursor].at < at:
            counts[events[cursor].plate] += 1
            cursor += 1
        self._plate_cursor[key] = cursor
        return counts

    def add(self, tenant_id: str, reading: OcrReading) -> None:
        """A reading just assessed becomes history for later ones (unless it is stored already)."""
        if reading.client_reading_id in self._stored:
            return
        self._stored.add(reading.client_reading_id)
        key = (tenant_id, reading.source_id)
        if reading.source_type == "meter_reading":
            parsed = parse_meter(reading.ocr_text)
            event = MeterEvent(reading.captured_at, reading.client_reading_id, parsed,
                               reading.unit or (parsed.unit if parsed else None))
            bisect.insort(self._meters.setdefault(key, []), event, key=_meter_order)
        else:
            plates = self._plates.setdefault(key, [])
            at = PlateEvent(reading.captured_at, reading.client_reading_id, canonical_plate(reading.ocr_text))
            # After every event at the same time: the cursor may already stand past earlier ones.
            plates.insert(max(bisect.bisect_right([e.at for e in plates], at.at), self._plate_cursor[key]), at)


@dataclass(frozen=True)
class Assessment:
    normalized: str | None
    features: dict[str, float]
    reasons: list[str]


def _confidence_logit(confidence: float) -> float:
    return math.log((1.0 - confidence + 0.01) / (confidence + 0.01))


def _mode(values: Iterable[object]) -> object | None:
    counted = Counter(v for v in values if v is not None)
    return counted.most_common(1)[0][0] if counted else None


def _days(later: datetime, earlier: datetime) -> float:
    return max((later - earlier).total_seconds() / 86400.0, _MIN_DAYS)


def consumption_z(history: Sequence[MeterEvent], value: float, at: datetime) -> float | None:
    """Robust z (median/MAD, in log space: consumption varies by factors, not by amounts) of the
    daily consumption implied since the history's median of its last three values, against the
    consumption between its consecutive readings. None with fewer than three readings."""
    if len(history) < 3:
        return None
    rates = [(b.value.value - a.value.value) / _days(b.at, a.at)  # type: ignore[union-attr]
             for a, b in zip(history, history[1:], strict=False)]
    rates = [r for r in rates if r >= 0]
    if len(rates) < 2:
        return None
    reference = sorted(history[-3:], key=lambda e: e.value.value)[len(history[-3:]) // 2]  # type: ignore[union-attr]
    rate = (value - reference.value.value) / _days(at, reference.at)  # type: ignore[union-attr]
    typical = statistics.median(rates)
    offset = max(typical * 0.1, 1e-3)
    logs = [math.log(r + offset) for r in rates]
    centre = statistics.median(logs)
    spread = statistics.median(abs(x - centre) for x in logs) * 1.4826 + 0.3
    return (math.log(max(rate, 0.0) + offset) - centre) / spread


def assess_meter(reading: OcrReading, history: Sequence[MeterEvent]) -> Assessment:
    features = dict.fromkeys(FEATURE_NAMES, 0.0)
    reasons: list[str] = []
    parsed = parse_meter(reading.ocr_text)
    if parsed is None:
        features["unparseable"] = 1.0
        return Assessment(None, features, ["unreadable_text"])
    if parsed.repaired:
        features["repaired"] = 1.0
        reasons.append("letters_read_as_digits")
    features["short_history"] = float(len(history) < 3)
    if history:
        last_three = sorted(e.value.value for e in history[-3:])  # type: ignore[union-attr]
        if parsed.value < last_three[len(last_three) // 2] - 1e-9:
            features["backwards"] = 1.0
            reasons.append("below_previous_reading")
        digits = _mode(e.value.integer_digits for e in history)  # type: ignore[union-attr]
        decimals = _mode(e.value.decimals for e in history)  # type: ignore[union-attr]
        if (parsed.integer_digits, parsed.decimals) != (digits, decimals):
            features["digit_count_change"] = 1.0
            reasons.append("digit_count_changed")
        unit = reading.unit or parsed.unit
        usual_unit = _mode(e.unit for e in history)
        if unit and usual_unit and unit != usual_unit:
            features["unit_mismatch"] = 1.0
            reasons.append("unit_mismatch")
    z = consumption_z(history, parsed.value, reading.captured_at)
    if z is not None and not features["backwards"]:
        features["consumption_excess"] = min(max(abs(z) - 2.0, 0.0), 15.0)
        if abs(z) > 4.0:
            reasons.append("consumption_outlier")
    return Assessment(parsed.text, features, reasons)


def assess_plate(reading: OcrReading, seen: Counter[str], countries: Sequence[str]) -> Assessment:
    features = dict.fromkeys(FEATURE_NAMES, 0.0)
    features["is_plate"] = 1.0
    plate = canonical_plate(reading.ocr_text)
    if not plate.isalnum():
        features["unparseable"] = 1.0
        return Assessment(plate or None, features, ["unreadable_text"])
    reasons: list[str] = []
    if not plate_countries(plate, countries):
        features["plate_no_format"] = 1.0
        reasons.append("plate_fits_no_format")
        if confusion_repairs(plate, countries):
            features["plate_fixable"] = 1.0
            reasons.append("confusable_characters")
    times_seen = seen.get(plate, 0)
    features["plate_seen"] = math.log1p(times_seen)
    if times_seen == 0 and any(n >= FREQUENT_PLATE and within_one_edit(plate, other)
                               for other, n in seen.items() if other != plate):
        features["plate_near_frequent"] = 1.0
        reasons.append("one_edit_from_frequent_plate")
    return Assessment(plate, features, reasons)


def assess(
    tenant_id: str, reading: OcrReading, index: HistoryIndex, countries: Sequence[str] = DEFAULT_PLATE_COUNTRIES
) -> Assessment:
    """Normalised text, model features and reasons of one reading, against history before it."""
    key = (tenant_id, reading.source_id)
    if reading.source_type == "meter_reading":
        result = assess_meter(reading, index.meter_before(key, reading.captured_at))
    else:
        result = assess_plate(reading, index.plates_before(key, reading.captured_at), countries)
    logit = _confidence_logit(reading.confidence)
    result.features.update(confidence_error=1.0 - reading.confidence, confidence_logit=logit,
                           plate_confidence_logit=logit * result.features["is_plate"])
    if reading.confidence < 0.7:
        result.reasons.insert(0, "low_confidence")
    return result


def meter_event(
    at: datetime, client_reading_id: str, ocr_text: str, unit: str | None, *, corrected_text: str | None = None,
    is_error: bool = False, reset: bool = False,
) -> MeterEvent:
    """A stored meter reading at its best known value: the correction's text when it fixed an
    error (nothing when that text is empty: unreadable), the OCR text otherwise."""
    text = corrected_text if is_error and corrected_text is not None else ocr_text
    parsed = parse_meter(text) if text.strip() else None
    return MeterEvent(at, client_reading_id, parsed, (parsed.unit if parsed and parsed.unit else unit), reset)


def plate_event(
    at: datetime, client_reading_id: str, ocr_text: str, *, corrected_text: str | None = None, is_error: bool = False
) -> PlateEvent | None:
    text = corrected_text if is_error and corrected_text is not None else ocr_text
    plate = canonical_plate(text)
    return PlateEvent(at, client_reading_id, plate) if plate else None
