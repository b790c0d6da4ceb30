"""The error model's training rows: every settled reading as of its own time, with its label.

A reading is labelled an error when its latest correction says so, and right when a correction
confirmed it or when it went uncorrected for `SETTLE` (readings newer than that may still be
corrected, so they are left out). Features come from the same `assess` as serving, against the
history stored before each reading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from shared.ocr.model import design_matrix
from shared.ocr.normalise import DEFAULT_PLATE_COUNTRIES
from shared.ocr.plausibility import HistoryIndex, HistorySnapshot, assess
from shared.ocr.readings import OcrReading
from shared.platform.kinds import TrainingSet

SETTLE = timedelta(days=7)


@dataclass(frozen=True)
class LabelledReading:
    tenant_id: str
    reading: OcrReading
    is_error: bool


def training_set(
    rows: Sequence[LabelledReading], snapshot: HistorySnapshot, countries: Mapping[str, Sequence[str]],
    start: datetime, end: datetime,
) -> TrainingSet:
    """Rows in time order -> design matrix and labels (the kind's transforms applied)."""
    index = HistoryIndex(snapshot)
    ordered = sorted(rows, key=lambda r: r.reading.captured_at)
    features = [assess(row.tenant_id, row.reading, index, countries.get(row.tenant_id) or DEFAULT_PLATE_COUNTRIES).features
                for row in ordered]
    return TrainingSet(design_matrix(features), np.array([r.is_error for r in ordered], dtype=bool),
                       [r.reading.captured_at for r in ordered], start, end)


def reading_from_row(row: Mapping[str, Any]) -> OcrReading:
    """A stored row as the intake model, without re-validating what was validated on the way in."""
    values: dict[str, Any] = {name: row[name] for name in OcrReading.model_fields}
    return OcrReading.model_construct(None, **values)
