"""Detector state as a model kind: an Isolation Forest over a host's vector (the robust z of each
psutil reading against its own past day) and each series' seasonal profile (median by hour of
week and hour of day), trained on the last 30 days and retrained weekly through the shared
lifecycle (train -> register, signed -> gate -> activate). Artifacts trained before
`metric_precedents` also hold each series' precedent memory; they still load, and the scan
falls back to it for a series the table lacks (new ones hold none: recent events are operational
data, refreshed daily, not part of the gated model).

The lifecycle judges candidates on labelled rows; a host's minutes carry no labels, so the
training source adds injected anomalies (real vectors with one to three readings pushed 4-10
robust units away) as the positives: the gate then asks "does this forest still isolate what is
abnormal for these hosts now, better than the champion does?" (a champion trained before the hosts'
behaviour changed isolates their new normal, and loses)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.monitoring.detectors import CALIBRATION
from shared.monitoring.forest import IsolationForestModel, export_forest
from shared.monitoring.host import HOST_METRICS
from shared.monitoring.precedent_memory import PrecedentMemory
from shared.platform.kinds import Fitted, PromotionPolicy, TrainingPolicy, TrainingSet

KIND_NAME = "anomaly"
FEATURE_NAMES: tuple[str, ...] = tuple(f"{name}_z" for name in HOST_METRICS)
HEURISTIC_LABEL = "anomaly-univariate"
# Profiles: 168 hour-of-week medians (Monday 00:00 UTC first) and 24 hour-of-day medians.
Profile = dict[str, list[float | None]]


@dataclass(frozen=True)
class AnomalyTrainingSet(TrainingSet):
    """The host vectors, plus every series' seasonal profile (kept through the split)."""

    profiles: dict[str, Profile] = field(default_factory=dict)

    def split(self, holdout_fraction: float) -> tuple[TrainingSet, TrainingSet]:
        older, newest = super().split(holdout_fraction)
        return (AnomalyTrainingSet(older.design, older.labels, older.as_of, older.start, older.end, self.profiles),
                newest)


@dataclass(frozen=True)
class AnomalyState:
    """The serving form: the forest scores a host's vectors; the profiles give seasonal baselines;
    the precedents (only in artifacts trained before `metric_precedents`) the scan's fallback memory
    beyond its day."""

    forest: IsolationForestModel
    profiles: dict[str, Profile]
    precedents: dict[str, PrecedentMemory] = field(default_factory=dict)

    def predict_proba(self, design: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.forest.predict_proba(design)

    def baseline(self, key: str, times: NDArray[np.float64]) -> NDArray[np.float64] | None:
        """The series' expected value at each time (epoch seconds), or None without a profile."""
        profile = self.profiles.get(key)
        return None if profile is None else profile_baseline(profile, times)


def profile_baseline(profile: Profile, times: NDArray[np.float64]) -> NDArray[np.float64]:
    """A profile's expected value at each time: its hour of week, else its hour of day (NaN where
    neither is known)."""
    weekly = np.array([np.nan if v is None else v for v in profile["hour_of_week"]], dtype=np.float64)
    daily = np.array([np.nan if v is None else v for v in profile["hour_of_day"]], dtype=np.float64)
    hours = (times // 3600).astype(np.int64)
    # 1970-01-01 was a Thursday: +72 hours makes Monday 00:00 hour 0 of the week.
    by_week = weekly[(hours + 72) % 168]
    result: NDArray[np.float64] = np.where(np.isnan(by_week), daily[hours % 24], by_week)
    return result


def profile_of(hours: Sequence[datetime], medians: Sequence[float]) -> Profile:
    """Median of the hourly medians by hour of week (needs two weeks of an hour) and of day."""
    week: dict[int, list[float]] = {}
    day: dict[int, list[float]] = {}
    for hour, value in zip(hours, medians, strict=True):
        week.setdefault(hour.weekday() * 24 + hour.hour, []).append(value)
        day.setdefault(hour.hour, []).append(value)
    return {"hour_of_week": [float(np.median(week[h])) if len(week.get(h, [])) >= 2 else None for h in range(168)],
            "hour_of_day": [float(np.median(day[h])) if len(day.get(h, [])) >= 3 else None for h in range(24)]}


class AnomalyKind:
    """The contract's values as class attributes; the five functions below."""

    name, feature_names, heuristic_label = KIND_NAME, FEATURE_NAMES, HEURISTIC_LABEL
    artifact_format = "json"
    # 30 days of host minutes; a first forest must separate the injected anomalies (ROC-AUC 0.7).
    training = TrainingPolicy(days_back=30, min_rows=500, min_positives=20, min_holdout_positives=5,
                              row_noun="host minutes", positive_noun="injected anomalies")
    promotion = PromotionPolicy(metric="roc_auc", min_relative_gain=0.02, first_model_min=0.7, bootstrap_resamples=200)

    def design_matrix(self, rows: Sequence[Mapping[str, float]]) -> NDArray[np.float64]:
        matrix = np.array([[float(row.get(name, 0.0)) for name in FEATURE_NAMES] for row in rows], dtype=np.float64)
        return np.nan_to_num(matrix.reshape(-1, len(FEATURE_NAMES)))

    def fit(self, train: TrainingSet) -> Fitted:
        from sklearn import __version__ as sklearn_version
        from sklearn.ensemble import IsolationForest

        normal = train.design[~train.labels]
        fitted = IsolationForest(n_estimators=100, max_samples=min(256, len(normal)), random_state=0).fit(normal)
        forest = export_forest(fitted, normal)
        profiles = train.profiles if isinstance(train, AnomalyTrainingSet) else {}
        state = AnomalyState(forest, profiles)
        artifact = json.dumps({"forest": forest.to_dict(), "profiles": profiles}).encode()
        return Fitted(model=state, artifact=artifact, estimator="IsolationForest (scikit-learn, exported to numpy)",
                      library_versions={"scikit-learn": sklearn_version},
                      manifest_extra={"series_profiles": len(profiles), "forest_trees": len(forest.trees)})

    def load(self, artifact: bytes) -> AnomalyState:
        try:
            data: dict[str, Any] = json.loads(artifact)
            # Only artifacts trained before metric_precedents hold precedents (the scan's fallback).
            precedents = {str(key): PrecedentMemory.from_dict(value)
                          for key, value in dict(data.get("precedents") or {}).items()}
            return AnomalyState(IsolationForestModel.from_dict(data["forest"]), dict(data.get("profiles") or {}),
                                precedents)
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise ValueError(f"unusable anomaly state: {exc}") from exc

    def heuristic(self, features: Mapping[str, float]) -> float:
        """Without a forest: the largest reading's robust z, scored like the robust_z detector."""
        largest = max((abs(float(features.get(name, 0.0))) for name in FEATURE_NAMES), default=0.0)
        return float(CALIBRATION["robust_z"].score(np.array([largest]))[0])

    def risk_level(self, probability: float) -> str:
        return "high" if probability >= 0.8 else "medium" if probability >= 0.5 else "low"


ANOMALY = AnomalyKind()
