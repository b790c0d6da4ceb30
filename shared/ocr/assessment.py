"""Assessing readings: normalise, judge against history, score with the error model (or its
heuristic), decide capture within the tenant's threshold and daily budget.

One path for the API (which then stores each reading and logs its score) and for triage (which
writes a file and stores nothing): readings are taken in `captured_at` order, each against the
stored history strictly before it plus the readings of the same call taken before it, exactly as
if they had arrived one by one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.errors import Conflict
from shared.ocr.model import HEURISTIC_THRESHOLD
from shared.ocr.plausibility import HistoryIndex, assess
from shared.ocr.readings import OcrReading
from shared.ocr.readings_repository import AssessedReading, OcrSettings, ReadingRepository, same_content
from shared.platform.serving import Serving


def capture_threshold(settings: OcrSettings, serving: Serving) -> float:
    """The tenant's own threshold; else the serving model's (volume-matched to the seed when it
    was trained); else the heuristic's, which is the seed's confidence < 0.7."""
    if settings.capture_threshold is not None:
        return settings.capture_threshold
    if serving.answering is not None:
        return float(serving.answering.version.manifest.get("capture_threshold", HEURISTIC_THRESHOLD))
    return HEURISTIC_THRESHOLD


@dataclass
class CaptureBudget:
    """Captures per UTC day of `captured_at` so far (stored ones plus this call's)."""

    limit: int | None
    used: dict[date, int]

    def take(self, at: datetime) -> bool:
        day = at.astimezone(UTC).date()
        if self.limit is not None and self.used.get(day, 0) >= self.limit:
            return False
        self.used[day] = self.used.get(day, 0) + 1
        return True


@dataclass(frozen=True)
class Scored:
    assessed: AssessedReading
    features: dict[str, float]


def answer_of(item: AssessedReading) -> dict[str, Any]:
    probability = None if item.error_probability is None else round(item.error_probability, 6)
    return {"reading_id": item.reading_id, "normalized": item.normalized, "error_probability": probability,
            "captured": item.captured, "reasons": list(item.reasons), "model_version": item.model_version,
            "degraded": item.degraded}


def stored_answer(row: dict[str, Any]) -> dict[str, Any]:
    """A replay's answer: as first given (model_version None for a reading imported unscored)."""
    probability = row["error_probability"]
    return {"reading_id": str(row["reading_id"]), "normalized": row["normalized"],
            "error_probability": None if probability is None else round(probability, 6),
            "captured": bool(row["captured"]), "reasons": list(row["reasons"]),
            "model_version": row.get("model_version"), "degraded": bool(row.get("degraded"))}


def split_replays(
    readings: Sequence[OcrReading], stored: dict[str, dict[str, Any]]
) -> tuple[list[OcrReading], dict[str, dict[str, Any]]]:
    """New readings, and the stored answers of replayed ones. A known id with other content is
    refused (409): nothing of the call is stored."""
    changed = [r.client_reading_id for r in readings
               if r.client_reading_id in stored and not same_content(stored[r.client_reading_id], r)]
    if changed:
        raise Conflict(f"{len(changed)} client_reading_id(s) already stored with other content: {', '.join(changed[:5])}")
    new = [r for r in readings if r.client_reading_id not in stored]
    return new, {r.client_reading_id: stored_answer(stored[r.client_reading_id])
                 for r in readings if r.client_reading_id in stored}


def score_in_order(
    tx: Any, repository: ReadingRepository, serving: Serving, tenant_id: str, readings: Sequence[OcrReading],
    settings: OcrSettings,
) -> list[Scored]:
    """Assess readings in `captured_at` order (ties: as given); returns them in that order, each
    captured when its score reaches the threshold (the daily budget is within_budget's)."""
    ordered = sorted(readings, key=lambda r: r.captured_at)
    if not ordered:
        return []
    start, end = ordered[0].captured_at, ordered[-1].captured_at
    sources = {(r.source_type, r.source_id) for r in ordered}
    # History up to the last reading's time, inclusive: the index itself keeps to "strictly before".
    index = HistoryIndex(repository.history(tx, tenant_id, sources, start, end + timedelta(microseconds=1)))
    threshold = capture_threshold(settings, serving)
    results = []
    for reading in ordered:
        found = assess(tenant_id, reading, index, settings.countries)
        probability = serving.probability(found.features)
        item = AssessedReading(str(uuid.uuid4()), reading, found.normalized, probability, probability >= threshold,
                               tuple(found.reasons), serving.label, serving.degraded)
        results.append(Scored(item, found.features))
        index.add(tenant_id, reading)
    return results


def within_budget(tx: Any, repository: ReadingRepository, tenant_id: str, scored: Sequence[Scored],
                  limit: int | None) -> list[Scored]:
    """The readings as scored (in `captured_at` order), a capture over its day's budget (the
    tenant's captures stored that day, then this call's before it) turned into no capture."""
    if limit is None:
        return list(scored)
    days = sorted({s.assessed.reading.captured_at.astimezone(UTC).date() for s in scored})
    budget = CaptureBudget(limit, repository.captured_per_day(tx, tenant_id, days))
    return [s if not s.assessed.captured or budget.take(s.assessed.reading.captured_at)
            else replace(s, assessed=replace(s.assessed, captured=False)) for s in scored]
