"""The readings route's use case: assess new readings, store them with their answer and log each
score; a replay answers what was stored, and stores and logs nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shared.ocr.assessment import answer_of, score_in_order, split_replays
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
        if settings.daily_capture_budget is not None:
            # First: the replays read below are then every reading stored by a request that held
            # it, and the budget counts every capture made before (triage, which stores nothing,
            # counts without waiting).
            services.readings.lock_captures(tx, tenant_id)
        new, answers = split_replays(readings, services.readings.stored(tx, tenant_id, ids))
        scored = score_in_order(tx, services.readings, serving, tenant_id, new, settings)
        inserted = services.readings.insert(tx, tenant_id, [s.assessed for s in scored])
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
