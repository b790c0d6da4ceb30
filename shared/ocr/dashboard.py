"""The OCR dashboard's data (staff, JSON): the loop's quality figures (shared/ocr/quality.py), the
capture threshold in force and where it comes from, and the latest labelling batch."""

from __future__ import annotations

from typing import Any

from shared.ocr.assessment import capture_threshold
from shared.ocr.dashboard_repository import latest_batch
from shared.ocr.kind import OCR_ERROR
from shared.ocr.quality import ocr_metrics
from shared.ocr.services import OcrServices
from shared.platform.serving import choose_serving


def ocr_dashboard(services: OcrServices, tenant_id: str, target_share: float = 0.8) -> dict[str, Any]:
    figures = ocr_metrics(services, tenant_id, target_share=target_share)
    serving = choose_serving(OCR_ERROR, services.models, tenant_id, "dashboard", allow_challenger=False,
                             with_shadow=False)
    with services.transactions.transaction() as tx:
        settings = services.readings.settings(tx, tenant_id)
        figures["latest_labelling_batch"] = latest_batch(tx, tenant_id)
    source = "tenant" if settings.capture_threshold is not None else "model" if serving.answering else "heuristic"
    figures["current_threshold"] = {"value": capture_threshold(settings, serving), "source": source,
                                    "model_version": serving.label}
    return figures
