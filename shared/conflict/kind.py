"""The conflict model as a model kind: what the shared lifecycle needs to train, serve and judge it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from shared.conflict.model import (
    ARTIFACT_FORMAT,
    FEATURE_NAMES,
    HEURISTIC_VERSION,
    KIND,
    LOG1P_FEATURES,
    LinearConflictModel,
    design_matrix,
    heuristic_probability,
    risk_level,
)
from shared.platform.kinds import Fitted, PromotionPolicy, TrainingPolicy, TrainingSet


@dataclass(frozen=True)
class ConflictKind:
    name: str = KIND
    feature_names: tuple[str, ...] = FEATURE_NAMES
    artifact_format: str = ARTIFACT_FORMAT
    heuristic_label: str = HEURISTIC_VERSION
    training: TrainingPolicy = TrainingPolicy(days_back=90, row_noun="sync events", positive_noun="conflicts")
    promotion: PromotionPolicy = PromotionPolicy(metric="roc_auc")

    def design_matrix(self, rows: Sequence[Mapping[str, float]]) -> NDArray[np.float64]:
        return design_matrix(rows, self.feature_names)

    def fit(self, train: TrainingSet) -> Fitted:
        from shared.conflict.fitting import train_conflict_model  # scikit-learn: training only

        model, _ = train_conflict_model(train)
        import sklearn

        return Fitted(
            model=model,
            artifact=model.to_artifact(),
            estimator="StandardScaler + LogisticRegression(C=1.0)",
            library_versions={"scikit-learn": sklearn.__version__},
            manifest_extra={"log1p_features": sorted(LOG1P_FEATURES)},
        )

    def load(self, artifact: bytes) -> LinearConflictModel:
        return LinearConflictModel.from_artifact(json.loads(artifact.decode("utf-8")))

    def heuristic(self, features: Mapping[str, float]) -> float:
        return heuristic_probability(features)

    def risk_level(self, probability: float) -> str:
        return risk_level(probability)


CONFLICT = ConflictKind()
