"""Training, retraining and outcome tracking of fraud models through the shared lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.context import AppContext
from shared.errors import InsufficientData
from shared.fraud.kind import FRAUD
from shared.fraud.services import fraud_services
from shared.platform.outcomes import track_outcomes
from shared.platform.retraining import retrain
from shared.platform.training import TrainingResult, train_candidate

DAYS_PER_MONTH = 30.5


def train_fraud_candidate(context: AppContext, *, tenant_id: str | None, months_back: int = 6,
                          end: datetime | None = None, actor: str = "train") -> TrainingResult:
    """A tenant's own candidate, or (tenant_id None) the pooled global one."""
    services = fraud_services(context)
    return train_candidate(FRAUD, services.training, services.registry, tenant_id=tenant_id,
                           end=end or datetime.now(UTC), days_back=int(months_back * DAYS_PER_MONTH), actor=actor)


def retrain_fraud_scope(context: AppContext, tenant_id: str | None, *, now: datetime | None = None) -> dict[str, Any]:
    services = fraud_services(context)
    return retrain(FRAUD, services.training, services.registry, services.locks, tenant_id=tenant_id, now=now,
                   actor="retrain-fraud")


def retrain_all_fraud_models(context: AppContext, *, now: datetime | None = None) -> dict[str, Any]:
    """The global model, then each tenant's own; a tenant with too few labels keeps the global one.
    (Each scope is independent and locked on its own: a deployment can fan these out.)"""
    results: dict[str, Any] = {"global": retrain_fraud_scope(context, None, now=now)}
    for tenant in context.tenants.list_tenants():
        try:
            results[tenant.slug] = retrain_fraud_scope(context, tenant.tenant_id, now=now)
        except InsufficientData as exc:  # pragma: no cover - retrain records it and answers instead
            results[tenant.slug] = {"promoted": False, "reason": exc.message}
    return results


def track_fraud_outcomes(context: AppContext, now: datetime | None = None) -> dict[str, Any]:
    services = fraud_services(context)
    return track_outcomes(services.transactions, services.outcomes, services.log, now)
