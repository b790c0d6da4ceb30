"""The readings route's use case: assess new readings, store them with their answer and log each
score; a replay answers what was stored, and stores and logs nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shared.ocr.assessment import Scored, answer_of, score_in_order, split_replays, within_budget
from shared.ocr.kind import OCR_ERROR
from shared.ocr.readings import OcrReading
from shared.ocr.services import OcrServices
from shared.platform.serving import choose_serving


def take_readings(
    services: OcrServices, tenant_id: str, readings: Sequence[OcrReading], request_id: str,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Answers {reading_id, normalized, error_probability, captured, reasons}, in input order."""
    now = now or datetime.now(UTC)
    serving = choose_serving(OCR_ERROR, services.models, tenant_id, request_id)
    ids = [r.client_reading_id for r in readings]
    with services.transactions.transaction() as tx:
        settings = services.readings.settings(tx, tenant_id)
        new, answers = split_replays(readings, services.readings.stored(tx, tenant_id, ids))
        scored = score_in_order(tx, services.readings, serving, tenant_id, new, settings)
        if settings.daily_capture_budget is not None:
            scored = _within_budget(services, tx, tenant_id, scored, settings.daily_capture_budget, answers)
        inserted = services.readings.insert(tx, tenant_id, [s.assessed for s in scored])
        services.readings.fold_plate_counts(tx, tenant_id, (r.source_id for r in new if r.source_type == "license_plate"))
        for item in scored:
            reading = item.assessed.reading
            if reading.client_reading_id not in inserted:
                continue  # stored meanwhile by a concurrent call: its answer is read below
            subject = {"reading_id": item.assessed.reading_id, "source_type": reading.source_type,
                       "source_id": reading.source_id}
            services.log.append(tx, serving.records(
                tenant_id=tenant_id, request_id=request_id, subject=subject, features=item.features,
                probability=float(item.assessed.error_probability or 0.0), predicted_at=now))
            answers[reading.client_reading_id] = answer_of(item.assessed)
        raced = [r for r in new if r.client_reading_id not in inserted]
        if raced:
            _, replayed = split_replays(raced, services.readings.stored(tx, tenant_id,
                                                                          [r.client_reading_id for r in raced]))
            answers.update(replayed)
    return [answers[i] for i in ids]


def _within_budget(services: OcrServices, tx: Any, tenant_id: str, scored: list[Scored], limit: int,
                   answers: dict[str, dict[str, Any]]) -> list[Scored]:
    """The scored readings this call stores, within the daily budget. The tenant's capture lock is
    taken here, after the scoring (history reads and the model for every reading), and held to
    the commit: concurrent calls wait only for each other's count and writes, and each counts the
    captures the others stored. A reading a concurrent call stored meanwhile is that call's: it is
    answered as stored (added to `answers`) and takes none of the budget."""
    services.readings.lock_captures(tx, tenant_id)
    ids = [s.assessed.reading.client_reading_id for s in scored]
    fresh, replayed = split_replays([s.assessed.reading for s in scored], services.readings.stored(tx, tenant_id, ids))
    answers.update(replayed)
    fresh_ids = {r.client_reading_id for r in fresh}
    return within_budget(tx, services.readings, tenant_id,
                         [s for s in scored if s.assessed.reading.client_reading_id in fresh_ids], limit)
