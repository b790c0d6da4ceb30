"""The conflict model as a model kind: what the shared lifecycle needs to train, serve and judge it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from shared.conflict.features import FEATURE_NAMES
from shared.conflict.model import (
    ARTIFACT_FORMAT,
    HEURISTIC_VERSION,
    KIND,
    BasisLogisticModel,
    LinearConflictModel,
    design_matrix,
    heuristic_probability,
    load_model,
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
        from shared.conflict.fitting import L2_STRENGTHS, VALIDATION_FRACTION, train_conflict_model

        model, selection = train_conflict_model(train)
        return Fitted(
            model=model,
            artifact=model.to_artifact(),
            estimator=f"logistic regression on basis {selection.basis!r}, L2 {selection.l2:g} per row (numpy Newton)",
            library_versions={},
            manifest_extra={
                "basis": selection.basis,
                "l2": selection.l2,
                "knots": {name: list(values) for name, values in model.knots.items()},
                "model_selection": {
                    "validation": f"newest {VALIDATION_FRACTION:.0%} of the training rows, by log loss",
                    "l2_strengths": list(L2_STRENGTHS),
                    "candidates": selection.table,
                },
            },
        )

    def load(self, artifact: bytes) -> BasisLogisticModel | LinearConflictModel:
        return load_model(json.loads(artifact.decode("utf-8")))

    def heuristic(self, features: Mapping[str, float]) -> float:
        return heuristic_probability(features)

    def risk_level(self, probability: float) -> str:
        return risk_level(probability)


CONFLICT = ConflictKind()
