"""The detector state through the shared lifecycle: trained on the last 30 days of the hosts'
vectors and every series' hourly medians, judged on injected anomalies, promoted behind the gate;
a promotion refreshes the series' precedent memories against the new state's profiles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.monitoring.kind import ANOMALY
from shared.monitoring.precedents import refresh_precedents
from shared.monitoring.services import MonitoringServices
from shared.platform.retraining import retrain
from shared.platform.training import TrainingResult, train_candidate


def retrain_state(services: MonitoringServices, *, now: datetime | None = None,
                  actor: str = "retrain-anomaly") -> dict[str, Any]:
    decision = retrain(ANOMALY, services.training, services.registry, services.locks, now=now, actor=actor)
    report = {k: v for k, v in decision.items() if k in ("promoted", "reason", "candidate", "candidate_score",
                                                          "champion_score")}
    if decision.get("promoted"):
        # The memories' residual statistics are taken against the active state's profiles: a new
        # state's, from now on, not from the next daily refresh.
        report["precedents"] = refresh_precedents(services, now)
    return report


def train_state(services: MonitoringServices, *, end: datetime, days_back: int | None = None,
                actor: str = "train") -> TrainingResult:
    return train_candidate(ANOMALY, services.training, services.registry, tenant_id=None, end=end,
                           days_back=days_back, actor=actor)
