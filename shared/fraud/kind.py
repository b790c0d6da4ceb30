"""The fraud model as a model kind: XGBoost (hist) per tenant, or one pooled global model; PR-AUC
decides promotion; the operating thresholds are chosen on validation and kept in the manifest."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from shared.fraud.booster import FraudBooster
from shared.fraud.features import FEATURE_NAMES
from shared.platform.kinds import Fitted, PromotionPolicy, TrainingPolicy, TrainingSet

KIND = "fraud"
HEURISTIC_LABEL = "fraud-rules-v1"
DEFAULT_REVIEW_THRESHOLD = 0.5
DEFAULT_BLOCK_THRESHOLD = 0.9


def _value(features: Mapping[str, float | None], name: str) -> float:
    value = features.get(name)
    return math.nan if value is None else float(value)


# (feature, test, weight): each rule that holds adds its weight to a 2 % base.
RULES: tuple[tuple[str, str, float], ...] = (
    ("gps_drift_meters", "> 200 m beyond the geofence", 0.35),
    ("implied_speed_kmh", "> 200 km/h from the previous position", 0.30),
    ("face_recognition_confidence", "< 0.6", 0.25),
    ("device_other_users_12h", ">= 1 other user on this device in 12 h", 0.15),
    ("hour_of_day", "a holiday, or between 23:00 and 05:00 local", 0.10),
    ("site_events_10min", ">= 10 events at the site in 10 min", 0.10),
)
RULES_BASE = 0.02


def _holds(name: str, features: Mapping[str, float | None]) -> bool:
    value = _value(features, name)
    return {
        "gps_drift_meters": value > 200,
        "implied_speed_kmh": value > 200,
        "face_recognition_confidence": value < 0.6,
        "device_other_users_12h": value >= 1,
        "hour_of_day": _value(features, "is_holiday") == 1 or value < 5 or value >= 23,
        "site_events_10min": value >= 10,
    }[name]


def rules_fired(features: Mapping[str, float | None]) -> list[dict[str, object]]:
    """The documented rules (README, "Fraud rules") that hold for these features; a missing input
    makes no rule hold."""
    return [{"feature": name, "value": features.get(name), "rule": test, "weight": weight}
            for name, test, weight in RULES if _holds(name, features)]


def rules_score(features: Mapping[str, float | None]) -> float:
    return min(RULES_BASE + sum(weight for name, _, weight in RULES if _holds(name, features)), 0.99)


def decision_for(score: float, review_threshold: float, block_threshold: float) -> str:
    if score >= block_threshold:
        return "block"
    if score >= review_threshold:
        return "review"
    return "allow"


@dataclass(frozen=True)
class FraudKind:
    name: str = KIND
    feature_names: tuple[str, ...] = FEATURE_NAMES
    artifact_format: str = "ubjson"
    heuristic_label: str = HEURISTIC_LABEL
    training: TrainingPolicy = TrainingPolicy(
        days_back=183, min_rows=500, min_positives=30, min_holdout_positives=5,
        row_noun="labelled attendance events", positive_noun="confirmed frauds",
    )
    promotion: PromotionPolicy = PromotionPolicy(metric="pr_auc", first_model_min=0.3)

    def design_matrix(self, rows: Sequence[Mapping[str, float | None]]) -> NDArray[np.float64]:
        return np.array([[_value(row, name) for name in self.feature_names] for row in rows],
                        dtype=np.float64).reshape(-1, len(self.feature_names))

    def fit(self, train: TrainingSet) -> Fitted:
        from shared.fraud.fitting import fit_fraud_booster  # xgboost training: training path only

        return fit_fraud_booster(train, self.feature_names)

    def load(self, artifact: bytes) -> FraudBooster:
        return FraudBooster.from_artifact(artifact, self.feature_names)

    def heuristic(self, features: Mapping[str, float | None]) -> float:
        return rules_score(features)

    def risk_level(self, probability: float) -> str:
        return decision_for(probability, DEFAULT_REVIEW_THRESHOLD, DEFAULT_BLOCK_THRESHOLD)


FRAUD = FraudKind()
