"""The demo's live OCR traffic: two weeks of new readings (ids of their own) assessed through the
real intake path day by day, and the corrections the seed-era loop would have made of them, so the
dashboard's capture rate, corrections and quality by confidence have the live loop's numbers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any

from shared.ocr.demo_data import DemoOcrConfig, corrections_for, generate_ocr_history
from shared.ocr.ingest import store_corrections
from shared.ocr.intake import take_readings
from shared.ocr.readings import OcrReading
from shared.ocr.services import OcrServices

PREFIX = "live"


def replay_readings(services: OcrServices, tenant_id: str, *, days: int = 14, now: datetime | None = None) -> dict[str, Any]:
    end = now or datetime.now(UTC)
    config = replace(DemoOcrConfig(), tenant=PREFIX, meters=20, gates=1, plate_reads_per_gate_per_day=30, days=days,
                     end=end, seed=23, source_prefix=f"{PREFIX}-")
    history = generate_ocr_history(config)
    captured = 0
    for day, readings in groupby(history, key=lambda r: r.record["captured_at"][:10]):
        batch = [OcrReading.model_validate(r.record) for r in readings]
        for start in range(0, len(batch), 500):
            answers = take_readings(services, tenant_id, batch[start:start + 500], f"demo-live-{day}",
                                    now=min(end, datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(hours=23)))
            captured += sum(1 for a in answers if a["captured"])
    corrections = store_corrections(services, tenant_id, list(enumerate(corrections_for(history, until=end))))
    return {"readings": len(history), "captured": captured, "corrections": corrections}
