"""Fitting the conflict model: StandardScaler + LogisticRegression, kept in its numpy serving form.

Imports scikit-learn (about 2 s) when called; only training code paths call it, never serving.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.conflict.model import FEATURE_NAMES, LinearConflictModel
from shared.platform.kinds import TrainingSet


def train_conflict_model(train: TrainingSet) -> tuple[LinearConflictModel, Any]:
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
