"""The OCR error model in its serving form (numpy only), its heuristic, and how it is fitted.

The model is a penalised logistic regression on the plausibility features: small enough to fit
on a few hundred corrections, calibrated by construction (its output is an error probability a
threshold and a budget can be set on), per source type through the plate-specific terms, and per
tenant through the lifecycle's tenant-scoped versions. Fitting is Newton's method in numpy: no
training library, so the weekly job runs in the lean layer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.ocr.plausibility import FEATURE_NAMES

SERVING_FORM = "ocr-error-logistic-v1"
HEURISTIC_LABEL = "ocr-heuristic-v1"
# The seed captured readings with confidence < 0.7. The heuristic's probability is 1 - confidence
# when no plausibility signal fires, so this threshold captures exactly what the seed did there.
SEED_CONFIDENCE = 0.7
HEURISTIC_THRESHOLD = 1.0 - SEED_CONFIDENCE + 1e-9
# How much each signal alone makes an error likely, combined noisy-OR with 1 - confidence.
# Hand-set from what the signals mean (a cumulative meter cannot run backwards); a trained model
# replaces them with weights learnt from the tenant's corrections.
HEURISTIC_WEIGHTS: Mapping[str, float] = {
    "unparseable": 0.95, "repaired": 0.5, "backwards": 0.85, "digit_count_change": 0.6, "unit_mismatch": 0.5,
    "plate_no_format": 0.6, "plate_fixable": 0.5, "plate_near_frequent": 0.7,
}
CONSUMPTION_WEIGHT, CONSUMPTION_FULL_AT = 0.75, 6.0
L2_PENALTY = 1.0


def heuristic_probability(features: Mapping[str, float]) -> float:
    keep = 1.0 - float(features["confidence_error"])
    for name, weight in HEURISTIC_WEIGHTS.items():
        keep *= 1.0 - weight * min(float(features[name]), 1.0)
    keep *= 1.0 - CONSUMPTION_WEIGHT * min(float(features["consumption_excess"]) / CONSUMPTION_FULL_AT, 1.0)
    return min(max(1.0 - keep, 0.0), 1.0)


def design_matrix(rows: Any) -> NDArray[np.float64]:
    matrix = np.array([[float(row[name]) for name in FEATURE_NAMES] for row in rows], dtype=np.float64)
    return matrix.reshape(-1, len(FEATURE_NAMES))


@dataclass(frozen=True)
class OcrErrorModel:
    means: NDArray[np.float64]
    scales: NDArray[np.float64]
    weights: NDArray[np.float64]
    bias: float

    def predict_proba(self, design: NDArray[np.float64]) -> NDArray[np.float64]:
        z = ((design - self.means) / self.scales) @ self.weights + self.bias
        result: NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic, without overflow
        return result

    def to_artifact(self) -> bytes:
        return json.dumps({"serving_form": SERVING_FORM, "features": list(FEATURE_NAMES),
                           "means": self.means.tolist(), "scales": self.scales.tolist(),
                           "weights": self.weights.tolist(), "bias": self.bias}, sort_keys=True).encode()

    @classmethod
    def from_artifact(cls, artifact: bytes) -> OcrErrorModel:
        payload = json.loads(artifact.decode("utf-8"))
        if payload.get("serving_form") != SERVING_FORM or tuple(payload.get("features", ())) != FEATURE_NAMES:
            raise ValueError(f"not a {SERVING_FORM} artifact over this slice's features")
        arrays = [np.asarray(payload[name], dtype=np.float64) for name in ("means", "scales", "weights")]
        if any(a.shape != (len(FEATURE_NAMES),) or not np.all(np.isfinite(a)) for a in arrays):
            raise ValueError("artifact arrays do not fit the features")
        if np.any(arrays[1] <= 0) or not math.isfinite(float(payload["bias"])):
            raise ValueError("artifact has a non-positive scale or a non-finite bias")
        return cls(arrays[0], arrays[1], arrays[2], float(payload["bias"]))


def fit_error_model(design: NDArray[np.float64], labels: NDArray[np.bool_], iterations: int = 50) -> OcrErrorModel:
    """L2-penalised logistic regression on standardised features, by Newton's method (the bias is
    not penalised). A constant column gets scale 1 and, penalised, a weight of 0."""
    means = design.mean(axis=0)
    scales = design.std(axis=0)
    scales[scales < 1e-9] = 1.0
    x = np.hstack([(design - means) / scales, np.ones((design.shape[0], 1))])
    y = labels.astype(np.float64)
    penalty = np.full(x.shape[1], L2_PENALTY)
    penalty[-1] = 0.0
    beta = np.zeros(x.shape[1])
    beta[-1] = math.log((y.mean() + 1e-3) / (1 - y.mean() + 1e-3))

    def loss(b: NDArray[np.float64]) -> float:
        z = x @ b
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * b * b))

    current = loss(beta)
    for _ in range(iterations):
        p = 0.5 * (1.0 + np.tanh(0.5 * (x @ beta)))
        gradient = x.T @ (p - y) + penalty * beta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-6)
        step = np.linalg.solve(hessian, gradient)
        # Halve the step until the loss falls: a plain Newton step can overshoot when a signal
        # almost separates the classes (rare signals do).
        scale = 1.0
        while scale > 1e-6 and loss(beta - scale * step) > current:
            scale /= 2
        beta = beta - scale * step
        improved, current = current - loss(beta), loss(beta)
        if improved < 1e-7 * max(current, 1.0):
            break
    return OcrErrorModel(means, scales, beta[:-1].copy(), float(beta[-1]))


def volume_matched_threshold(model: OcrErrorModel, design: NDArray[np.float64]) -> float:
    """The error probability above which the model captures as many readings as the seed's
    confidence rule did on the same rows: the default threshold once a model serves, so the
    capture volume stays what the tenant is used to while the captures get better."""
    seed_share = float(np.mean(design[:, FEATURE_NAMES.index("confidence_error")] > 1.0 - SEED_CONFIDENCE))
    scores = np.sort(model.predict_proba(design))[::-1]
    if seed_share <= 0 or scores.size == 0:
        return 1.0
    return float(scores[min(int(math.ceil(seed_share * scores.size)) - 1, scores.size - 1)])
