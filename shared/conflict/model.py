"""The conflict model in its serving form: numpy only, no scikit-learn on the request path.

Training fits StandardScaler + LogisticRegression; what serving needs of that pipeline (the
scaler's means and scales, the coefficients, the intercept) is saved as JSON, signed and verified
like every artifact, and applied here. tests/unit/test_conflict_model.py checks the two agree
to 1e-9.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FEATURE_NAMES: tuple[str, ...] = (
    "concurrent_editors",
    "hours_since_last_sync",
    "user_conflict_rate",
    "entity_edit_frequency",
    "field_overlap_score",
)
# Counts and durations are heavy-tailed; log1p makes their effect on the log-odds closer to linear.
LOG1P_FEATURES: frozenset[str] = frozenset({"concurrent_editors", "hours_since_last_sync", "entity_edit_frequency"})
KIND = "conflict"  # the registry's name for this model
ARTIFACT_FORMAT = "json"
SERVING_FORM = "standardized-logistic-v1"

# Risk levels by probability: low < 0.2 <= medium < 0.5 <= high.
RISK_THRESHOLDS: tuple[tuple[float, str], ...] = ((0.5, "high"), (0.2, "medium"), (0.0, "low"))


def risk_level(probability: float) -> str:
    for threshold, level in RISK_THRESHOLDS:
        if probability >= threshold:
            return level
    return "low"


def design_matrix(rows: Sequence[Mapping[str, float]], feature_names: Sequence[str] = FEATURE_NAMES) -> NDArray[np.float64]:
    """Feature rows -> the model's input matrix (the fixed transforms applied). Used by training
    and serving alike, so the two can never transform differently."""
    matrix = np.array([[float(row[name]) for name in feature_names] for row in rows], dtype=np.float64)
    if matrix.size == 0:
        return matrix.reshape(0, len(feature_names))
    for column, name in enumerate(feature_names):
        if name in LOG1P_FEATURES:
            matrix[:, column] = np.log1p(np.maximum(matrix[:, column], 0.0))
    return matrix


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
    return out


@dataclass(frozen=True)
class LinearConflictModel:
    feature_names: tuple[str, ...]
    means: NDArray[np.float64]
    scales: NDArray[np.float64]
    coefficients: NDArray[np.float64]
    intercept: float

    def predict_proba(self, design: NDArray[np.float64]) -> NDArray[np.float64]:
        standardized = (design - self.means) / self.scales
        return _sigmoid(standardized @ self.coefficients + self.intercept)

    def predict_rows(self, rows: Sequence[Mapping[str, float]]) -> NDArray[np.float64]:
        return self.predict_proba(design_matrix(rows, self.feature_names))

    def to_artifact(self) -> bytes:
        return json.dumps(
            {
                "serving_form": SERVING_FORM,
                "feature_names": list(self.feature_names),
                "log1p_features": sorted(LOG1P_FEATURES & set(self.feature_names)),
                "means": self.means.tolist(),
                "scales": self.scales.tolist(),
                "coefficients": self.coefficients.tolist(),
                "intercept": self.intercept,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_artifact(cls, payload: Mapping[str, Any]) -> LinearConflictModel:
        if payload.get("serving_form") != SERVING_FORM:
            raise ValueError(f"not a {SERVING_FORM} artifact")
        if sorted(payload["log1p_features"]) != sorted(LOG1P_FEATURES & set(payload["feature_names"])):
            raise ValueError("artifact was trained with other feature transforms")
        names = tuple(payload["feature_names"])
        if not names or not set(names) <= set(FEATURE_NAMES):
            raise ValueError(f"artifact names unknown features: {names}")
        model = cls(
            feature_names=names,
            means=np.asarray(payload["means"], dtype=np.float64),
            scales=np.asarray(payload["scales"], dtype=np.float64),
            coefficients=np.asarray(payload["coefficients"], dtype=np.float64),
            intercept=float(payload["intercept"]),
        )
        for name, values in (("means", model.means), ("scales", model.scales), ("coefficients", model.coefficients)):
            if values.shape != (len(names),) or not np.all(np.isfinite(values)):
                raise ValueError(f"artifact {name} do not fit {len(names)} features")
        if np.any(model.scales == 0):
            raise ValueError("artifact has a zero scale")
        return model


HEURISTIC_VERSION = "heuristic-v1"


def heuristic_probability(features: Mapping[str, float]) -> float:
    """Used when no verified model can serve (see README): the log-odds rise with field overlap,
    other editors, staleness and the user's own conflict history.

    logit = -3.0 + 2.5*overlap + 0.6*log1p(editors) + 0.3*log1p(hours) + 4.0*(conflict_rate - 0.1)
    """
    logit = (
        -3.0
        + 2.5 * float(features["field_overlap_score"])
        + 0.6 * math.log1p(float(features["concurrent_editors"]))
        + 0.3 * math.log1p(float(features["hours_since_last_sync"]))
        + 4.0 * (float(features["user_conflict_rate"]) - 0.1)
    )
    return 1.0 / (1.0 + math.exp(-logit))
