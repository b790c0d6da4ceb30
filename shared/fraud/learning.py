"""Training, retraining and outcome tracking of fraud models through the shared lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.context import AppContext
from shared.fraud.kind import FRAUD
from shared.fraud.services import fraud_services
from shared.platform.outcomes import track_outcomes
from shared.platform.retraining import retrain
from shared.platform.training import TrainingResult, train_candidate
from shared.platform.training_jobs import retrain_scopes

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
    """The global model and each tenant's own, one job per scope: queued for the training workers
    when a queue is configured, else run here one after the other. A tenant with too few labels
    keeps being served by the global model (its retrain records why)."""
    scopes: list[str | None] = [None, *(tenant.tenant_id for tenant in context.tenants.list_tenants())]
    return retrain_scopes(context, FRAUD.name, scopes, lambda tenant_id: retrain_fraud_scope(context, tenant_id, now=now),
                          fraud_services(context).locks, now)


def track_fraud_outcomes(context: AppContext, now: datetime | None = None) -> dict[str, Any]:
    services = fraud_services(context)
    return track_outcomes(services.transactions, services.outcomes, services.log, now)
