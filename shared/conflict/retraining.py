"""Weekly retraining of the global conflict model, through the shared lifecycle's gate
(shared/platform/retraining.py): ROC-AUC at least 5 % better and a significant paired bootstrap."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.conflict.kind import CONFLICT
from shared.conflict.services import conflict_services
from shared.context import AppContext
from shared.platform.retraining import retrain


def retrain_conflict_model(
    context: AppContext, *, now: datetime | None = None, days_back: int = 90, actor: str = "retrain-conflict",
    tenant_id: str | None = None,
) -> dict[str, Any]:
    services = conflict_services(context)
    return retrain(CONFLICT, services.training, services.registry, services.locks, tenant_id=tenant_id, now=now,
                   days_back=days_back, actor=actor)
