"""The OCR error model as a model kind: what the shared lifecycle needs to train, serve and judge it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from shared.ocr.model import (
    HEURISTIC_LABEL,
    OcrErrorModel,
    design_matrix,
    fit_error_model,
    heuristic_probability,
    volume_matched_threshold,
)
from shared.ocr.plausibility import FEATURE_NAMES
from shared.platform.kinds import Fitted, PromotionPolicy, TrainingPolicy, TrainingSet

KIND_NAME = "ocr_error"


@dataclass(frozen=True)
class OcrErrorKind:
    name: str = KIND_NAME
    feature_names: tuple[str, ...] = FEATURE_NAMES
    artifact_format: str = "json"
    heuristic_label: str = HEURISTIC_LABEL
    # Corrections are few: a year of readings, and a tenant model once 30 errors are known.
    training: TrainingPolicy = TrainingPolicy(days_back=365, min_rows=200, min_positives=30,
                                              row_noun="settled readings", positive_noun="corrected errors")
    # Errors are rare: PR-AUC says how well the top of the ranking (what gets captured) is.
    promotion: PromotionPolicy = PromotionPolicy(metric="pr_auc", first_model_min=0.2)

    def design_matrix(self, rows: Sequence[Mapping[str, float]]) -> NDArray[np.float64]:
        return design_matrix(rows)

    def fit(self, train: TrainingSet) -> Fitted:
        model = fit_error_model(train.design, train.labels)
        return Fitted(model=model, artifact=model.to_artifact(),
                      estimator="standardised L2 logistic regression (Newton, numpy)", library_versions={},
                      manifest_extra={"capture_threshold": volume_matched_threshold(model, train.design)})

    def load(self, artifact: bytes) -> OcrErrorModel:
        return OcrErrorModel.from_artifact(artifact)

    def heuristic(self, features: Mapping[str, float]) -> float:
        return heuristic_probability(features)

    def risk_level(self, probability: float) -> str:
        return "high" if probability >= 0.5 else "medium" if probability >= 0.3 else "low"


OCR_ERROR = OcrErrorKind()
