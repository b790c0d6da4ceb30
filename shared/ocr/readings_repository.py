"""Where OCR readings and the tenant's capture settings are stored, and how a source's history
is read back for plausibility: idempotent on the client's reading id."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from shared.adapters.db import Transaction
from shared.ocr.normalise import DEFAULT_PLATE_COUNTRIES, canonical_plate
from shared.ocr.plausibility import METER_HISTORY, HistorySnapshot, MeterEvent, meter_event, plate_event
from shared.ocr.readings import OcrReading
from shared.platform.time_range import EARLIEST_TIME, LATEST_TIME, is_plausible_time

# The content that makes two readings "the same": a replay must match it.
CONTENT_FIELDS = ("source_type", "source_id", "ocr_text", "confidence", "captured_at", "unit", "image_key")


@dataclass(frozen=True)
class OcrSettings:
    capture_threshold: float | None = None
    daily_capture_budget: int | None = None
    plate_countries: tuple[str, ...] = ()

    @property
    def countries(self) -> tuple[str, ...]:
        return self.plate_countries or DEFAULT_PLATE_COUNTRIES


@dataclass(frozen=True)
class AssessedReading:
    """A reading with what the service made of it: the row the API stores."""

    reading_id: str
    reading: OcrReading
    normalized: str | None
    error_probability: float | None
    captured: bool
    reasons: tuple[str, ...]
    # What answered: the model's label (None: imported unscored) and whether it was the heuristic.
    model_version: str | None = None
    degraded: bool = False


class ReadingRepository(Protocol):
    def settings(self, tx: Any, tenant_id: str) -> OcrSettings: ...
    def save_settings(self, tx: Any, tenant_id: str, settings: OcrSettings) -> None: ...

    def stored(self, tx: Any, tenant_id: str, client_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Stored readings by client id: the content fields plus the stored answer."""
        ...

    def insert(self, tx: Any, tenant_id: str, readings: Sequence[AssessedReading]) -> set[str]:
        """Store the readings whose client id is new; returns those client ids."""
        ...

    def history(
        self, tx: Any, tenant_id: str | None, sources: Iterable[tuple[str, str]] | None, start: datetime, end: datetime
    ) -> HistorySnapshot:
        """Stored history for plausibility: meter readings before `end`; plate counts before
        `start` and plate readings in [start, end). tenant_id/sources None: all of them."""
        ...

    def captured_per_day(self, tx: Any, tenant_id: str, days: Sequence[date]) -> dict[date, int]: ...

    def lock_captures(self, tx: Any, tenant_id: str) -> None:
        """Hold the tenant's captures until the transaction ends: concurrent readings then count
        each other's captures against the daily budget."""
        ...

    def fold_plate_counts(self, tx: Any, tenant_id: str, gates: Iterable[str]) -> None:
        """Fold the gates' pending plate count changes into their counts, if enough are pending and
        no other fold of the tenant is running (it never waits)."""
        ...


def same_content(stored: dict[str, Any], reading: OcrReading) -> bool:
    incoming = reading.model_dump()
    return all(stored[name] == incoming[name] for name in CONTENT_FIELDS)


# -- PostgreSQL ---------------------------------------------------------------------------------

_SETTINGS_SQL = """
SELECT capture_threshold, daily_capture_budget, plate_countries FROM ocr_settings
WHERE tenant_id = CAST(:tenant AS uuid)
"""
_SAVE_SETTINGS_SQL = """
INSERT INTO ocr_settings (tenant_id, capture_threshold, daily_capture_budget, plate_countries, updated_at)
VALUES (CAST(:tenant AS uuid), :threshold, :budget, CAST(:countries AS text[]), now())
ON CONFLICT (tenant_id) DO UPDATE SET capture_threshold = EXCLUDED.capture_threshold,
    daily_capture_budget = EXCLUDED.daily_capture_budget, plate_countries = EXCLUDED.plate_countries,
    updated_at = now()
"""
# The answer's model comes from the reading's logged score (the answering one, not a shadow's).
_STORED_SQL = """
SELECT r.reading_id::text AS reading_id, r.client_reading_id, r.source_type, r.source_id, r.ocr_text, r.confidence,
       r.captured_at, r.unit, r.image_key, r.normalized, r.error_probability, r.captured, r.reasons,
       p.model_label AS model_version, COALESCE(p.variant = 'heuristic', false) AS degraded
FROM ocr_readings r
LEFT JOIN LATERAL (SELECT k.model_label, k.variant FROM ocr_predictions k
                   WHERE k.reading_id = r.reading_id AND k.variant <> 'shadow'
                   ORDER BY k.predicted_at LIMIT 1) p ON true
WHERE r.tenant_id = CAST(:tenant AS uuid) AND r.client_reading_id = ANY(CAST(:ids AS text[]))
"""
_INSERT_SQL = """
INSERT INTO ocr_readings (reading_id, tenant_id, client_reading_id, source_type, source_id, ocr_text, confidence,
    captured_at, unit, image_key, normalized, error_probability, captured, reasons)
SELECT reading_id, CAST(:tenant AS uuid), client_reading_id, source_type, source_id, ocr_text, confidence,
    captured_at, unit, image_key, normalized, error_probability, captured, reasons
FROM jsonb_to_recordset(CAST(:batch AS jsonb)) AS r(reading_id uuid, client_reading_id text, source_type text,
    source_id text, ocr_text text, confidence float8, captured_at timestamptz, unit text, image_key text,
    normalized text, error_probability float8, captured boolean, reasons text[])
ORDER BY client_reading_id  -- one lock order: batches of the same ids in other orders cannot deadlock
ON CONFLICT (tenant_id, client_reading_id) DO NOTHING
RETURNING client_reading_id
"""
# The tenant's (NULL: every tenant's) listed sources (NULL: all of them), of the table aliased `t`.
_OF_SOURCES = """(CAST(:tenant AS uuid) IS NULL OR {t}.tenant_id = CAST(:tenant AS uuid))
  AND (CAST(:ids AS text[]) IS NULL OR {t}.source_id = ANY(CAST(:ids AS text[])))"""
# A reading r's latest correction (and whether any correction restarted the meter), as `c`.
_LATEST_CORRECTION = """LEFT JOIN LATERAL (
    SELECT (array_agg(k.corrected_text ORDER BY k.seq DESC))[1] AS corrected_text,
           (array_agg(k.is_error ORDER BY k.seq DESC))[1] AS is_error, bool_or(k.resets_meter) AS resets_meter
    FROM ocr_corrections k WHERE k.reading_id = r.reading_id
) c ON true"""
# Each stored reading with its latest correction. Only readings in the plausible range are history:
# one stored before intake checked it (year 1 is read back as a text "0001-12-31 BC", not a
# datetime) would break every later reading's history.
_HISTORY_SELECT = f"""
SELECT r.tenant_id::text AS tenant_id, r.source_id, r.client_reading_id, r.captured_at, r.ocr_text, r.unit,
       c.corrected_text, COALESCE(c.is_error, false) AS is_error, COALESCE(c.resets_meter, false) AS resets_meter
FROM ocr_readings r
{_LATEST_CORRECTION}
WHERE r.source_type = :source_type AND r.captured_at >= :earliest AND r.captured_at < :latest
  AND {_OF_SOURCES.format(t="r")}
"""
# A meter's history as its readings in [start, end) are assessed: every reading of that span, and
# before it only the latest few (an assessment looks at METER_HISTORY readings with a value, back to
# the last reset), so a call's read does not grow with the meter's years of readings. `meters` is
# the tenant's listed meters, or every meter of the tenant (or of all) found in the table.
_LISTED_METERS = "SELECT CAST(:tenant AS uuid) AS tenant_id, s AS source_id FROM unnest(CAST(:ids AS text[])) AS s"
_STORED_METERS = f"""SELECT DISTINCT r.tenant_id, r.source_id FROM ocr_readings r
    WHERE r.source_type = 'meter_reading' AND {_OF_SOURCES.format(t="r")}"""
_METER_READINGS = """SELECT r.reading_id, r.client_reading_id, r.captured_at, r.ocr_text, r.unit FROM ocr_readings r
        WHERE r.tenant_id = m.tenant_id AND r.source_type = 'meter_reading' AND r.source_id = m.source_id"""
_METER_HISTORY_SQL = f"""
WITH meters AS ({{meters}})
SELECT m.tenant_id::text AS tenant_id, m.source_id, r.client_reading_id, r.captured_at, r.ocr_text, r.unit,
       r.captured_at < CAST(:start AS timestamptz) AS before_start, c.corrected_text, COALESCE(c.is_error, false) AS is_error,
       COALESCE(c.resets_meter, false) AS resets_meter
FROM meters m
CROSS JOIN LATERAL (
    ({{readings}} AND r.captured_at >= CAST(:start AS timestamptz) AND r.captured_at < CAST(:end AS timestamptz)
         AND r.captured_at >= CAST(:earliest AS timestamptz) AND r.captured_at < CAST(:latest AS timestamptz))
    UNION ALL
    ({{readings}} AND r.captured_at < CAST(:start AS timestamptz)
         AND r.captured_at >= CAST(:earliest AS timestamptz) AND r.captured_at < CAST(:latest AS timestamptz)
     ORDER BY r.captured_at DESC {{before}})
) r
{_LATEST_CORRECTION}
"""
# Rows read before the span per meter: twice what an assessment looks at, for the unreadable ones
# among them, and every reading at the time of the last of them (WITH TIES: the index's time order
# alone, no sort of the meter's history; ties are put in client-id order by HistoryIndex). A meter
# whose rows hold too few values (and no reset) is read again, whole.
METER_ROWS_BEFORE = 2 * METER_HISTORY
# A gate's plates as its readings in [start, end) are assessed: its counts (migration 0025: of
# every stored reading), plus its pending count changes and less its readings from `start` on
# (added up in SQL; a live call's are few, a backdated upload's are the gate's readings since its
# start); and the readings of [start, end), the span's events. One statement, so every part is of
# one snapshot. Counts come as JSON objects (text: count), a gate's counts in one and its changes
# in another, not a row each: a busy gate has thousands of texts, and pg8000 reads a row in Python
# (5,000 rows were most of a call's 48 ms).
_NO_EVENT = ("NULL::text AS client_reading_id, NULL::timestamptz AS captured_at, NULL::text AS ocr_text,"
             " NULL::text AS corrected_text, NULL::boolean AS is_error")
_PLATE_HISTORY_SQL = f"""
SELECT c.tenant_id::text AS tenant_id, c.source_id, json_object_agg(c.plate_text, c.readings) AS counts, {_NO_EVENT}
FROM ocr_plate_counts c WHERE {_OF_SOURCES.format(t="c")}
GROUP BY c.tenant_id, c.source_id
UNION ALL
SELECT a.tenant_id, a.source_id, json_object_agg(a.plate_text, a.n), {_NO_EVENT} FROM (
    SELECT d.tenant_id, d.source_id, d.plate_text, sum(d.n) AS n FROM (
        SELECT x.tenant_id::text AS tenant_id, x.source_id, x.plate_text, x.delta AS n FROM ocr_plate_count_changes x
        WHERE {_OF_SOURCES.format(t="x")}
        UNION ALL
        SELECT h.tenant_id, h.source_id, CASE WHEN h.is_error THEN h.corrected_text ELSE h.ocr_text END, -1
        FROM ({_HISTORY_SELECT} AND r.captured_at >= :start) h
    ) d GROUP BY 1, 2, 3
) a GROUP BY 1, 2
UNION ALL
SELECT h.tenant_id, h.source_id, NULL, h.client_reading_id, h.captured_at, h.ocr_text, h.corrected_text, h.is_error
FROM ({_HISTORY_SELECT} AND r.captured_at >= :start AND r.captured_at < :end) h
"""
# A gate's pending count changes are folded into its counts by the intake call or correction (or,
# once at its end, the import) that finds this many: a read sums them, a fold rewrites some of the
# gate's counts. Not by each chunk of an import: the changes a long transaction deleted stay in
# the index until it ends, and each later fold in it read them all again (an import of 20,000
# plates slowed to seconds a chunk).
PLATE_FOLD_AT = 64
_FOLD_PLATE_COUNTS_SQL = "SELECT ocr_plate_counts_fold(CAST(:tenant AS uuid), CAST(:gates AS text[]), :at_least)"
# The time bounds let the partial index of captures (migration 0023) read the days' captures alone.
_CAPTURED_PER_DAY_SQL = """
SELECT (captured_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM ocr_readings
WHERE tenant_id = CAST(:tenant AS uuid) AND captured
  AND captured_at >= CAST(:first AS timestamptz) AND captured_at < CAST(:after AS timestamptz)
  AND (captured_at AT TIME ZONE 'UTC')::date = ANY(CAST(:days AS date[]))
GROUP BY 1
"""


def text_array(values: Iterable[str]) -> str:
    """A text[] literal: each value double-quoted, `"` and `\\` escaped (as JSON does; validated ids
    hold no control character, so no other escape occurs). Non-ASCII stays as it is: an array
    literal reads `\\u00e9` as `u00e9`."""
    return "{" + ",".join(json.dumps(v, ensure_ascii=False) for v in values) + "}"


def _row_for_insert(item: AssessedReading) -> dict[str, Any]:
    return {"reading_id": item.reading_id, **item.reading.model_dump(mode="json"), "normalized": item.normalized,
            "error_probability": item.error_probability, "captured": item.captured, "reasons": list(item.reasons),
            "model_version": item.model_version, "degraded": item.degraded}


def _source_ids(sources: Iterable[tuple[str, str]] | None, source_type: str) -> str | None:
    return None if sources is None else text_array(sorted({i for t, i in sources if t == source_type}))


def _meter_history(tx: Transaction, tenant_id: str | None, meters: str | None, start: datetime,
                   end: datetime) -> dict[tuple[str, str], list[MeterEvent]]:
    """Each meter's readings in [start, end) and its latest METER_ROWS_BEFORE before `start`; a
    meter whose earlier rows were cut there with fewer than METER_HISTORY values and no reset
    among them is read again with every earlier reading (an assessment then sees what the whole
    history gives it)."""
    listed = _LISTED_METERS if tenant_id is not None and meters is not None else _STORED_METERS
    params = {"tenant": tenant_id, "ids": meters, "start": start, "end": end, "earliest": EARLIEST_TIME,
              "latest": LATEST_TIME}
    rows = tx.fetch_all(_METER_HISTORY_SQL.format(meters=listed, readings=_METER_READINGS,
                                                  before=f"FETCH FIRST {METER_ROWS_BEFORE} ROWS WITH TIES"), **params)
    history: dict[tuple[str, str], list[MeterEvent]] = {}
    earlier: dict[tuple[str, str], list[MeterEvent]] = {}
    for row in rows:
        key = (row["tenant_id"], row["source_id"])
        event = _meter_event(row)
        history.setdefault(key, []).append(event)
        if row["before_start"]:
            earlier.setdefault(key, []).append(event)
    cut = sorted(key for key, events in earlier.items() if len(events) >= METER_ROWS_BEFORE
                 and sum(e.value is not None for e in events) < METER_HISTORY and not any(e.reset for e in events))
    for tenant, source in cut:
        whole = tx.fetch_all(_METER_HISTORY_SQL.format(meters=_LISTED_METERS, readings=_METER_READINGS, before=""),
                             **{**params, "tenant": tenant, "ids": text_array([source])})
        history[(tenant, source)] = [_meter_event(row) for row in whole]
    return history


def _meter_event(row: dict[str, Any]) -> MeterEvent:
    return meter_event(row["captured_at"], row["client_reading_id"], row["ocr_text"], row["unit"],
                       corrected_text=row["corrected_text"], is_error=row["is_error"], reset=row["resets_meter"])


class PostgresReadingRepository:
    def settings(self, tx: Transaction, tenant_id: str) -> OcrSettings:
        row = tx.fetch_one(_SETTINGS_SQL, tenant=tenant_id)
        if row is None:
            return OcrSettings()
        return OcrSettings(row["capture_threshold"], row["daily_capture_budget"], tuple(row["plate_countries"]))

    def save_settings(self, tx: Transaction, tenant_id: str, settings: OcrSettings) -> None:
        tx.execute(_SAVE_SETTINGS_SQL, tenant=tenant_id, threshold=settings.capture_threshold,
                   budget=settings.daily_capture_budget, countries=text_array(settings.plate_countries))

    def stored(self, tx: Transaction, tenant_id: str, client_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        rows = tx.fetch_all(_STORED_SQL, tenant=tenant_id, ids=text_array(client_ids))
        return {row["client_reading_id"]: row for row in rows}

    def insert(self, tx: Transaction, tenant_id: str, readings: Sequence[AssessedReading]) -> set[str]:
        if not readings:
            return set()
        batch = json.dumps([_row_for_insert(item) for item in readings])
        return {row["client_reading_id"] for row in tx.fetch_all(_INSERT_SQL, tenant=tenant_id, batch=batch)}

    def history(
        self, tx: Transaction, tenant_id: str | None, sources: Iterable[tuple[str, str]] | None, start: datetime,
        end: datetime,
    ) -> HistorySnapshot:
        sources = None if sources is None else list(sources)
        snapshot = HistorySnapshot()
        meters = _source_ids(sources, "meter_reading")
        if meters != "{}":
            snapshot.meters = _meter_history(tx, tenant_id, meters, start, end)
        gates = _source_ids(sources, "license_plate")
        if gates != "{}":
            params = {"source_type": "license_plate", "tenant": tenant_id, "ids": gates, "start": start, "end": end,
                      "earliest": EARLIEST_TIME, "latest": LATEST_TIME}
            counts = snapshot.plate_counts
            for row in tx.fetch_all(_PLATE_HISTORY_SQL, **params):
                key = (row["tenant_id"], row["source_id"])
                if row["client_reading_id"] is None:  # the gate's counts, or what to add to them
                    counter = counts.setdefault(key, Counter())
                    for text, readings in row["counts"].items():
                        plate = canonical_plate(text)
                        if plate:
                            counter[plate] += readings
                    continue
                event = plate_event(row["captured_at"], row["client_reading_id"], row["ocr_text"],
                                    corrected_text=row["corrected_text"], is_error=row["is_error"])
                if event is not None:
                    snapshot.plates.setdefault(key, []).append(event)
            for key, counter in counts.items():
                counts[key] = +counter  # the plates read before `start`
        return snapshot

    def lock_captures(self, tx: Transaction, tenant_id: str) -> None:
        tx.advisory_lock(f"ocr/captures/{tenant_id}")

    def fold_plate_counts(self, tx: Transaction, tenant_id: str, gates: Iterable[str]) -> None:
        if listed := sorted(set(gates)):
            tx.execute(_FOLD_PLATE_COUNTS_SQL, tenant=tenant_id, gates=text_array(listed), at_least=PLATE_FOLD_AT)

    def captured_per_day(self, tx: Transaction, tenant_id: str, days: Sequence[date]) -> dict[date, int]:
        if not days:
            return {}
        first = datetime.combine(min(days), time(), UTC)
        rows = tx.fetch_all(_CAPTURED_PER_DAY_SQL, tenant=tenant_id, first=first,
                            after=datetime.combine(max(days), time(), UTC) + timedelta(days=1),
                            days="{" + ",".join(d.isoformat() for d in days) + "}")
        return {row["day"]: int(row["n"]) for row in rows}


# -- in memory ----------------------------------------------------------------------------------


@dataclass
class OcrMemory:
    """The fakes' shared state: what the tables would hold."""

    readings: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (tenant, client id)
    corrections: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, OcrSettings] = field(default_factory=dict)
    selections: dict[str, dict[str, Any]] = field(default_factory=dict)  # reading id -> selection
    batches: list[dict[str, Any]] = field(default_factory=list)

    by_reading: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add_correction(self, row: dict[str, Any]) -> None:
        self.corrections.append(row)
        self.by_reading.setdefault(row["reading_id"], []).append(row)

    def latest_correction(self, reading_id: str) -> dict[str, Any] | None:
        mine = self.by_reading.get(reading_id)
        return mine[-1] if mine else None

    def resets(self, reading_id: str) -> bool:
        return any(c["resets_meter"] for c in self.by_reading.get(reading_id, ()))


class InMemoryReadingRepository:
    def __init__(self, memory: OcrMemory) -> None:
        self.memory = memory

    def settings(self, tx: Any, tenant_id: str) -> OcrSettings:
        return self.memory.settings.get(tenant_id, OcrSettings())

    def save_settings(self, tx: Any, tenant_id: str, settings: OcrSettings) -> None:
        self.memory.settings[tenant_id] = settings

    def stored(self, tx: Any, tenant_id: str, client_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {i: dict(self.memory.readings[(tenant_id, i)]) for i in client_ids if (tenant_id, i) in self.memory.readings}

    def insert(self, tx: Any, tenant_id: str, readings: Sequence[AssessedReading]) -> set[str]:
        new = set()
        for item in readings:
            key = (tenant_id, item.reading.client_reading_id)
            if key not in self.memory.readings:
                self.memory.readings[key] = {"tenant_id": tenant_id, **item.reading.model_dump(),
                                             **{k: v for k, v in _row_for_insert(item).items()
                                                if k not in CONTENT_FIELDS}}
                new.add(item.reading.client_reading_id)
        return new

    def history(
        self, tx: Any, tenant_id: str | None, sources: Iterable[tuple[str, str]] | None, start: datetime, end: datetime
    ) -> HistorySnapshot:
        wanted = None if sources is None else set(sources)
        snapshot = HistorySnapshot()
        for (tenant, _), row in self.memory.readings.items():
            if (tenant_id is not None and tenant != tenant_id) or row["captured_at"] >= end:
                continue
            if not is_plausible_time(row["captured_at"]):
                continue
            if wanted is not None and (row["source_type"], row["source_id"]) not in wanted:
                continue
            latest = self.memory.latest_correction(row["reading_id"]) or {}
            corrected, is_error = latest.get("corrected_text"), bool(latest.get("is_error"))
            key = (tenant, row["source_id"])
            if row["source_type"] == "meter_reading":
                snapshot.meters.setdefault(key, []).append(meter_event(
                    row["captured_at"], row["client_reading_id"], row["ocr_text"], row["unit"],
                    corrected_text=corrected, is_error=is_error, reset=self.memory.resets(row["reading_id"])))
                continue
            event = plate_event(row["captured_at"], row["client_reading_id"], row["ocr_text"],
                                corrected_text=corrected, is_error=is_error)
            if event is None:
                continue
            if row["captured_at"] < start:
                snapshot.plate_counts.setdefault(key, Counter())[event.plate] += 1
            else:
                snapshot.plates.setdefault(key, []).append(event)
        return snapshot

    def lock_captures(self, tx: Any, tenant_id: str) -> None:
        """One process, one transaction at a time: nothing to wait for."""

    def fold_plate_counts(self, tx: Any, tenant_id: str, gates: Iterable[str]) -> None:
        """Counts are taken from the readings at each read: nothing to fold."""

    def captured_per_day(self, tx: Any, tenant_id: str, days: Sequence[date]) -> dict[date, int]:
        counts: Counter[date] = Counter(
            row["captured_at"].astimezone(UTC).date() for (tenant, _), row in self.memory.readings.items()
            if tenant == tenant_id and row["captured"])
        return {day: counts[day] for day in days if counts[day]}

