"""Weekly retraining of the conflict models, through the shared lifecycle's gate
(shared/platform/retraining.py): ROC-AUC at least 5 % better and a significant paired bootstrap.
The global model and every tenant's own active one are retrained, each in its scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.conflict.kind import CONFLICT
from shared.conflict.services import conflict_services
from shared.context import AppContext
from shared.platform.retraining import retrain
from shared.platform.training_jobs import retrain_scopes


def retrain_conflict_model(
    context: AppContext, *, now: datetime | None = None, days_back: int = 90, actor: str = "retrain-conflict",
    tenant_id: str | None = None,
) -> dict[str, Any]:
    services = conflict_services(context)
    return retrain(CONFLICT, services.training, services.registry, services.locks, tenant_id=tenant_id, now=now,
                   days_back=days_back, actor=actor)


def retrain_all_conflict_models(context: AppContext, *, now: datetime | None = None) -> dict[str, Any]:
    """The global model and each tenant's own active version (trained with `train conflict
    --tenant`), one job per scope: queued for the training workers when a queue is configured,
    else run here one after the other. A tenant the global model serves is not given a model of its
    own by the schedule."""
    own = [tenant.tenant_id for tenant in context.tenants.list_tenants()
           if context.registry.in_scope(CONFLICT.name, tenant.tenant_id).active is not None]
    return retrain_scopes(context, CONFLICT.name, [None, *own],
                          lambda tenant_id: retrain_conflict_model(context, tenant_id=tenant_id, now=now),
                          conflict_services(context).locks, now)
