"""The OCR dashboard's data (staff, JSON): the loop's quality figures (shared/ocr/quality.py) plus
the latest labelling batch."""

from __future__ import annotations

from typing import Any

from shared.ocr.dashboard_repository import latest_batch
from shared.ocr.quality import ocr_metrics
from shared.ocr.services import OcrServices


def ocr_dashboard(services: OcrServices, tenant_id: str, target_share: float = 0.8) -> dict[str, Any]:
    figures = ocr_metrics(services, tenant_id, target_share=target_share)
    with services.transactions.transaction() as tx:
        figures["latest_labelling_batch"] = latest_batch(tx, tenant_id)
    return figures
