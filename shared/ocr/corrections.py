"""Corrections: what a user or a labeller says a reading really read. Each is stored once (the
same correction twice answers the same id), decides whether the reading was an OCR error, and
carries the character error rate of the original."""

from __future__ import annotations

from typing import Any

from shared.errors import NotFound
from shared.ocr.corrections_repository import NewCorrection
from shared.ocr.normalise import character_error_rate, comparable_text
from shared.ocr.readings import ALWAYS_ERRORS, NOT_ERRORS, RESETS, CorrectionRequest
from shared.ocr.services import OcrServices


def judge_correction(source_type: str, reading_id: str, ocr_text: str, corrected_text: str,
                     correction_type: str) -> NewCorrection:
    """Was the reading an error? Resets and confirmations are not; a wrong unit or an unreadable
    photo always is; any other type is when the corrected text differs from what OCR read."""
    if correction_type in NOT_ERRORS:
        is_error = False
    elif correction_type in ALWAYS_ERRORS:
        is_error = True
    else:
        is_error = comparable_text(source_type, corrected_text) != comparable_text(source_type, ocr_text)
    cer = character_error_rate(source_type, ocr_text, corrected_text) if is_error else 0.0
    return NewCorrection(reading_id, corrected_text, correction_type, is_error, correction_type in RESETS, cer)


def record_correction(services: OcrServices, tenant_id: str, request: CorrectionRequest) -> dict[str, Any]:
    with services.transactions.transaction() as tx:
        reading = services.corrections.find_reading(tx, tenant_id, request.source_type, request.source_id)
        if reading is None:
            raise NotFound(f"no {request.source_type} reading {request.source_id}")
        correction = judge_correction(request.source_type, str(reading["reading_id"]), reading["ocr_text"],
                                      request.corrected_text, request.correction_type)
        [(correction_id, created)] = services.corrections.add(tx, tenant_id, [correction])
        if reading["source_type"] == "license_plate":  # a gate that only gets corrections must fold too
            services.readings.fold_plate_counts(tx, tenant_id, [reading["source_id"]])
    return {
        "status": "success",
        "message": "correction recorded" if created else "correction already recorded",
        "correction_id": correction_id,
        "reading_id": str(reading["reading_id"]),
        "is_error": correction.is_error,
        "character_error_rate": correction.character_error_rate,
    }
