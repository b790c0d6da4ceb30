"""Training a candidate of any kind: extract -> time-ordered split -> fit -> evaluate -> register.

The kind supplies the fit (which may import training libraries) and its policy; the source
supplies the rows, already as of each row's own time. Everything else is the same for every kind.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np

from shared.errors import InsufficientData
from shared.platform.kinds import (
    ModelKind,
    ServingModel,
    TrainingPolicy,
    TrainingSet,
    feature_frequencies,
    feature_quantiles,
)
from shared.platform.metrics import classification_report, reliability_table
from shared.platform.registry import ModelVersion, Registry


class TrainingSource(Protocol):
    def training_set(self, tenant_id: str | None, start: datetime, end: datetime) -> TrainingSet:
        """Labelled rows of [start, end) in time order; tenant_id None: every tenant's."""
        ...


@dataclass(frozen=True)
class TrainingResult:
    model: ServingModel
    holdout: TrainingSet
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    version: ModelVersion | None = None


def check_enough(data: TrainingSet, policy: TrainingPolicy) -> None:
    if data.rows < policy.min_rows:
        raise InsufficientData(f"{data.rows} {policy.row_noun} in the window; training needs at least {policy.min_rows}")
    if data.positives < policy.min_positives or data.rows - data.positives < policy.min_positives:
        raise InsufficientData(
            f"{data.positives} {policy.positive_noun} among {data.rows} {policy.row_noun}; training needs at least"
            f" {policy.min_positives} of each class"
        )


def check_holdout(holdout: TrainingSet, policy: TrainingPolicy) -> None:
    if holdout.positives < policy.min_holdout_positives or holdout.positives == holdout.rows:
        raise InsufficientData(
            f"the newest {policy.holdout_fraction:.0%} holds too few {policy.positive_noun} (or only those)"
            " to validate on"
        )


def train_candidate(
    kind: ModelKind, source: TrainingSource, registry: Registry | None, *, tenant_id: str | None, end: datetime,
    days_back: int | None = None, actor: str = "train",
) -> TrainingResult:
    """Train on the older part of the window, validate on the newest, register a candidate
    (when a registry is given) for (kind, tenant_id)."""
    policy = kind.training
    days = days_back or policy.days_back
    data = source.training_set(tenant_id, end - timedelta(days=days), end)
    check_enough(data, policy)  # before splitting: a split needs rows to cut
    train, holdout = data.split(policy.holdout_fraction)
    check_holdout(holdout, policy)
    fitted = kind.fit(train)
    holdout_scores = fitted.model.predict_proba(holdout.design)
    metrics = classification_report(holdout.labels, holdout_scores)
    manifest = {
        "kind": kind.name,
        "scope": "global" if tenant_id is None else "tenant",
        "feature_names": list(kind.feature_names),
        "training_window": {"start": data.start.isoformat(), "end": data.end.isoformat(), "days": days},
        "split": {
            "train_rows": train.rows,
            "train_positives": train.positives,
            "holdout_rows": holdout.rows,
            "holdout_start": holdout.start.isoformat(),
        },
        "rows": data.rows,
        "positives": data.positives,
        "metrics": metrics,
        "reliability": reliability_table(holdout.labels, holdout_scores),
        "promotion_metric": kind.promotion.metric,
        "feature_quantiles": feature_quantiles(train.design, kind.feature_names),
        "feature_frequencies": feature_frequencies(train.design, kind.feature_names),
        "library_versions": {"python": platform.python_version(), "numpy": np.__version__,
                             **fitted.library_versions},
        "estimator": fitted.estimator,
        **fitted.manifest_extra,
    }
    version = None
    if registry is not None:
        version = registry.register(kind=kind.name, tenant_id=tenant_id, artifact=fitted.artifact,
                                    artifact_format=kind.artifact_format, manifest=manifest, actor=actor)
    return TrainingResult(fitted.model, holdout, metrics, manifest, version)


def candidate_report(result: TrainingResult, registry: Registry, *, activate: bool, actor: str, reason: str,
                     **extra: Any) -> dict[str, Any]:
    """What a `mlstack train KIND` command prints: the new candidate, its metrics, and its status
    after an optional activation."""
    assert result.version is not None
    report = {"version_id": result.version.version_id, "label": result.version.label, "status": "candidate",
              "metrics": result.metrics, **extra}
    if activate:
        report["status"] = registry.activate(result.version.version_id, actor=actor, reason=reason).status
    return report
