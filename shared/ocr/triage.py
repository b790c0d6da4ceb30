"""Batch triage: a file of readings in, `client_reading_id, error_probability, captured, reasons`
out, computed exactly as the API would have answered each reading arriving in `captured_at` order
(history = stored readings strictly before it, plus the file's earlier readings), storing nothing."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.ocr.assessment import score_in_order, within_budget
from shared.ocr.files import validated_rows
from shared.ocr.kind import OCR_ERROR
from shared.ocr.readings import OcrReading, parse_reading_record
from shared.ocr.services import OcrServices
from shared.platform.output_files import written_whole
from shared.platform.serving import choose_serving

OUTPUT_COLUMNS = ("client_reading_id", "error_probability", "captured", "reasons")


def triage_file(services: OcrServices, tenant_id: str, source: Path, target: Path) -> dict[str, Any]:
    seen: set[str] = set()
    now = datetime.now(UTC)  # as the API's intake time: a reading captured later is refused

    def parse(line: int, record: dict[str, Any]) -> OcrReading:
        reading = parse_reading_record(record, now)
        if reading.client_reading_id in seen:
            raise ValueError("client_reading_id repeats an earlier line")
        seen.add(reading.client_reading_id)
        return reading

    readings = [reading for _, reading in validated_rows(source, parse)]
    # The champion answers: a challenger's share is a share of live traffic.
    serving = choose_serving(OCR_ERROR, services.models, tenant_id, "triage", allow_challenger=False,
                             with_shadow=False)
    with services.transactions.transaction() as tx:
        settings = services.readings.settings(tx, tenant_id)
        ordered = score_in_order(tx, services.readings, serving, tenant_id, readings, settings)
        scored = {s.assessed.reading.client_reading_id: s.assessed for s in within_budget(
            tx, services.readings, tenant_id, ordered, settings.daily_capture_budget)}
    with written_whole(target) as handle:
        writer = csv.writer(handle)
        writer.writerow(OUTPUT_COLUMNS)
        for reading in readings:
            item = scored[reading.client_reading_id]
            writer.writerow([reading.client_reading_id, f"{item.error_probability:.6f}",
                             "true" if item.captured else "false", ";".join(item.reasons)])
    return {"rows": len(readings), "captured": sum(1 for s in scored.values() if s.captured),
            "model_version": serving.label, "degraded": serving.degraded}
