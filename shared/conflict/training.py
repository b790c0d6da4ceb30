"""Training the conflict model: extract (SQL) -> time-ordered split -> fit -> evaluate -> candidate.

This module imports scikit-learn (about 2 s); only training code paths import it, never serving.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.conflict.features_repository import feature_vector, features_for_stored_events
from shared.conflict.model import (
    ARTIFACT_FORMAT,
    FEATURE_NAMES,
    KIND,
    LOG1P_FEATURES,
    LinearConflictModel,
    design_matrix,
)
from shared.context import AppContext
from shared.errors import InsufficientData
from shared.platform.metrics import classification_report
from shared.platform.registry import ModelVersion

HOLDOUT_FRACTION = 0.2
MIN_ROWS = 200
MIN_POSITIVES = 20
MIN_POSITIVES_HOLDOUT = 5


@dataclass(frozen=True)
class TrainingData:
    design: NDArray[np.float64]
    labels: NDArray[np.bool_]
    as_of: list[datetime]
    start: datetime
    end: datetime

    @property
    def rows(self) -> int:
        return len(self.labels)

    def split(self, holdout_fraction: float = HOLDOUT_FRACTION) -> tuple[TrainingData, TrainingData]:
        """Older part to train on, newest part to validate on (rows are in time order)."""
        cut = int(round(self.rows * (1 - holdout_fraction)))
        older = TrainingData(self.design[:cut], self.labels[:cut], self.as_of[:cut], self.start, self.as_of[cut])
        newest = TrainingData(self.design[cut:], self.labels[cut:], self.as_of[cut:], self.as_of[cut], self.end)
        return older, newest


def extract_conflict_training_data(
    context: AppContext, *, end: datetime, days_back: int = 90, tenant_id: str | None = None
) -> TrainingData:
    """Every sync event of the window with its as-of features and label, in one query."""
    start = end - timedelta(days=days_back)
    with context.database.transaction() as tx:
        rows = features_for_stored_events(tx, start, end, tenant_id)
    design = design_matrix([feature_vector(row) for row in rows])
    labels = np.array([bool(row["label"]) for row in rows], dtype=bool)
    return TrainingData(design, labels, [row["as_of"] for row in rows], start, end)


def _check_enough(data: TrainingData) -> None:
    positives = int(data.labels.sum())
    if data.rows < MIN_ROWS:
        raise InsufficientData(f"{data.rows} sync events in the window; training needs at least {MIN_ROWS}")
    if positives < MIN_POSITIVES or data.rows - positives < MIN_POSITIVES:
        raise InsufficientData(
            f"{positives} conflicts among {data.rows} events; training needs at least {MIN_POSITIVES}"
            " of each class"
        )


def _check_holdout(holdout: TrainingData) -> None:
    holdout_positives = int(holdout.labels.sum())
    if holdout_positives < MIN_POSITIVES_HOLDOUT or holdout_positives == holdout.rows:
        raise InsufficientData("the newest 20 % holds too few conflicts (or only conflicts) to validate on")


def train_conflict_model(train: TrainingData) -> tuple[LinearConflictModel, Any]:
    """Fit StandardScaler + LogisticRegression; return the serving form and the fitted pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    pipeline.fit(train.design, train.labels)
    scaler, regression = pipeline[0], pipeline[-1]
    serving = LinearConflictModel(
        feature_names=FEATURE_NAMES,
        means=np.asarray(scaler.mean_, dtype=np.float64),
        scales=np.asarray(scaler.scale_, dtype=np.float64),
        coefficients=np.asarray(regression.coef_[0], dtype=np.float64),
        intercept=float(regression.intercept_[0]),
    )
    return serving, pipeline


@dataclass(frozen=True)
class TrainingResult:
    model: LinearConflictModel
    holdout: TrainingData
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    version: ModelVersion | None = None


def _library_versions() -> dict[str, str]:
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def train_candidate(
    context: AppContext, *, end: datetime, days_back: int = 90, register: bool = True, actor: str = "train"
) -> TrainingResult:
    """Train on the older 80 % of the window, validate on the newest 20 %, register a candidate."""
    data = extract_conflict_training_data(context, end=end, days_back=days_back)
    _check_enough(data)  # before splitting: a split needs rows to cut
    train, holdout = data.split()
    _check_holdout(holdout)
    model, _ = train_conflict_model(train)
    metrics = classification_report(holdout.labels, model.predict_proba(holdout.design))
    manifest = {
        "feature_names": list(FEATURE_NAMES),
        "log1p_features": sorted(LOG1P_FEATURES),
        "training_window": {"start": data.start.isoformat(), "end": data.end.isoformat(), "days": days_back},
        "split": {
            "train_rows": train.rows,
            "train_positives": int(train.labels.sum()),
            "holdout_rows": holdout.rows,
            "holdout_start": holdout.start.isoformat(),
        },
        "rows": data.rows,
        "positives": int(data.labels.sum()),
        "metrics": metrics,
        "library_versions": _library_versions(),
        "estimator": "StandardScaler + LogisticRegression(C=1.0)",
    }
    version = None
    if register:
        version = context.registry.register(
            kind=KIND, tenant_id=None, artifact=model.to_artifact(), artifact_format=ARTIFACT_FORMAT,
            manifest=manifest, actor=actor,
        )
    return TrainingResult(model, holdout, metrics, manifest, version)
