"""Fitting the fraud model: XGBoost `hist`, positives weighted by the data's own imbalance, early
stopping on the newest part of the training rows, operating thresholds chosen on that part."""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.fraud.booster import FraudBooster, import_xgboost
from shared.fraud.thresholds import choose_operating_point
from shared.platform.kinds import Fitted, TrainingSet

VALIDATION_FRACTION = 0.2
PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.08,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 2,
    "eval_metric": "aucpr",
    "nthread": 2,
}
MAX_ROUNDS = 600
EARLY_STOPPING_ROUNDS = 40


def fit_fraud_booster(train: TrainingSet, feature_names: tuple[str, ...]) -> Fitted:
    xgboost = import_xgboost()
    fit, validation = train.split(VALIDATION_FRACTION)
    positives = max(int(fit.labels.sum()), 1)
    scale_pos_weight = (fit.rows - positives) / positives
    params = {**PARAMS, "scale_pos_weight": scale_pos_weight}
    names = list(feature_names)
    dfit = xgboost.DMatrix(fit.design, label=fit.labels.astype(np.float32), missing=np.nan, feature_names=names)
    dval = xgboost.DMatrix(validation.design, label=validation.labels.astype(np.float32), missing=np.nan,
                           feature_names=names)
    booster = xgboost.train(params, dfit, num_boost_round=MAX_ROUNDS, evals=[(dval, "validation")],
                            early_stopping_rounds=EARLY_STOPPING_ROUNDS, verbose_eval=False)
    best = int(booster.best_iteration) + 1
    booster = booster[:best]
    model = FraudBooster(booster, feature_names)
    days = max((validation.end - validation.start).total_seconds() / 86400.0, 1 / 24)
    operating_point = choose_operating_point(validation.labels, model.predict_proba(validation.design), days)
    gain = booster.get_score(importance_type="total_gain")
    return Fitted(
        model=model,
        artifact=model.to_artifact(),
        estimator=f"XGBoost hist, {best} trees, scale_pos_weight {scale_pos_weight:.1f}",
        library_versions={"xgboost": xgboost.__version__},
        manifest_extra={
            "operating_point": operating_point,
            "scale_pos_weight": scale_pos_weight,
            "trees": best,
            "feature_importance_gain": {name: float(gain.get(name, 0.0)) for name in names},
            "validation_rows": validation.rows,
        },
    )
