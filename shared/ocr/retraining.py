"""Weekly retraining of the error model through the shared lifecycle's gate
(shared/platform/retraining.py): the global model on every tenant's corrections, then each
tenant's own (skipped, and audited, while a tenant has too few corrected errors)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.ocr.kind import OCR_ERROR
from shared.ocr.services import OcrServices
from shared.platform.locks import run_alone
from shared.platform.outcomes import track_outcomes
from shared.platform.retraining import retrain
from shared.platform.training import TrainingResult, train_candidate

RUN_LOCK = "retrain-run/ocr_error"


def retrain_ocr(services: OcrServices, tenant_ids: Sequence[str], *, now: datetime | None = None,
                actor: str = "retrain-ocr") -> dict[str, Any]:
    """One run at a time: a second run started beside one would retrain each scope again as soon
    as the first released it (two identical candidates of a tenant in a review)."""
    return run_alone(services.locks, RUN_LOCK, "another retrain-ocr run is running",
                     lambda: _retrain_every_scope(services, tenant_ids, now=now, actor=actor))


def _retrain_every_scope(services: OcrServices, tenant_ids: Sequence[str], *, now: datetime | None,
                         actor: str) -> dict[str, Any]:
    decisions = {"global": retrain(OCR_ERROR, services.training, services.registry, services.locks, now=now,
                                   actor=actor)}
    for tenant_id in tenant_ids:
        decisions[tenant_id] = retrain(OCR_ERROR, services.training, services.registry, services.locks,
                                       tenant_id=tenant_id, now=now, actor=actor)
    return {scope: {k: v for k, v in d.items() if k in ("promoted", "reason", "candidate", "candidate_score",
                                                         "champion_score")} for scope, d in decisions.items()}


def train_ocr(services: OcrServices, *, end: datetime, tenant_id: str | None = None, days_back: int | None = None,
              actor: str = "train") -> TrainingResult:
    return train_candidate(OCR_ERROR, services.training, services.registry, tenant_id=tenant_id, end=end,
                           days_back=days_back, actor=actor)


def track_ocr_outcomes(services: OcrServices, now: datetime | None = None) -> dict[str, Any]:
    return track_outcomes(services.transactions, services.outcomes, services.log, now)
