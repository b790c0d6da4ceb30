"""Training the conflict model: a basis and a shrinkage chosen on a time-ordered validation split,
saved in its numpy serving form (shared/conflict/fitting.py). The window, split, checks and
registration are the shared lifecycle's (shared/platform/training.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.conflict.fitting import train_conflict_model
from shared.conflict.kind import CONFLICT
from shared.conflict.services import conflict_services
from shared.context import AppContext
from shared.platform.kinds import TrainingSet
from shared.platform.training import TrainingResult
from shared.platform.training import train_candidate as train_kind_candidate

TrainingData = TrainingSet  # the name the conflict loop used before the shared lifecycle
__all__ = ["TrainingData", "extract_conflict_training_data", "train_candidate", "train_conflict_model"]


def extract_conflict_training_data(
    context: AppContext, *, end: datetime, days_back: int = 90, tenant_id: str | None = None
) -> TrainingSet:
    """Every sync event of the window with its as-of features and label, in one query."""
    return conflict_services(context).training.training_set(tenant_id, end - timedelta(days=days_back), end)


def train_candidate(
    context: AppContext, *, end: datetime, days_back: int = 90, register: bool = True, actor: str = "train",
    tenant_id: str | None = None,
) -> TrainingResult:
    """Train a conflict candidate on the window (global unless tenant_id) and register it."""
    services = conflict_services(context)
    return train_kind_candidate(CONFLICT, services.training, services.registry if register else None,
                                tenant_id=tenant_id, end=end, days_back=days_back, actor=actor)
