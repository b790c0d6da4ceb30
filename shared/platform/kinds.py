"""The model-kind contract: what a loop supplies so that one lifecycle can train, register, serve,
log, judge and promote its models (scikit-learn's lesson: one estimator interface for all).

A kind is plain values plus five functions. Fitting may import training libraries (inside `fit`);
`load` and the serving model's `predict_proba` must not: they run on the request path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

PromotionMetric = Literal["roc_auc", "pr_auc"]


class ServingModel(Protocol):
    """A verified, loaded model: probabilities of the positive class for a design matrix."""

    def predict_proba(self, design: NDArray[np.float64]) -> NDArray[np.float64]: ...


@dataclass(frozen=True)
class Fitted:
    """A fitted candidate: its serving form, the artifact bytes to sign, what the manifest says of it."""

    model: ServingModel
    artifact: bytes
    estimator: str
    library_versions: dict[str, str]
    manifest_extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingSet:
    """Design matrix (the kind's transforms applied) and labels, rows in time order."""

    design: NDArray[np.float64]
    labels: NDArray[np.bool_]
    as_of: list[datetime]
    start: datetime
    end: datetime

    @property
    def rows(self) -> int:
        return len(self.labels)

    @property
    def positives(self) -> int:
        return int(self.labels.sum())

    def split(self, holdout_fraction: float) -> tuple[TrainingSet, TrainingSet]:
        """Older part to train on, newest part to validate on (rows are in time order)."""
        cut = int(round(self.rows * (1 - holdout_fraction)))
        older = TrainingSet(self.design[:cut], self.labels[:cut], self.as_of[:cut], self.start, self.as_of[cut])
        newest = TrainingSet(self.design[cut:], self.labels[cut:], self.as_of[cut:], self.as_of[cut], self.end)
        return older, newest


@dataclass(frozen=True)
class TrainingPolicy:
    """How much data a candidate needs, and the words the refusals use ("sync events", "conflicts")."""

    days_back: int = 90
    holdout_fraction: float = 0.2
    min_rows: int = 200
    min_positives: int = 20
    min_holdout_positives: int = 5
    row_noun: str = "rows"
    positive_noun: str = "positives"


@dataclass(frozen=True)
class PromotionPolicy:
    """A candidate replaces the champion only when `metric` is `min_relative_gain` better and a
    paired bootstrap's interval of the gain lies above 0; a first model needs `first_model_min`."""

    metric: PromotionMetric = "roc_auc"
    min_relative_gain: float = 0.05
    first_model_min: float = 0.6
    bootstrap_resamples: int = 1000


class ModelKind(Protocol):
    """What every loop's model supplies. Registered versions are keyed by (name, tenant)."""

    @property
    def name(self) -> str: ...
    @property
    def feature_names(self) -> tuple[str, ...]: ...
    @property
    def artifact_format(self) -> str: ...
    @property
    def heuristic_label(self) -> str: ...
    @property
    def training(self) -> TrainingPolicy: ...
    @property
    def promotion(self) -> PromotionPolicy: ...

    def design_matrix(self, rows: Sequence[Mapping[str, float]]) -> NDArray[np.float64]:
        """Feature rows -> model input, the same transforms for training and serving."""
        ...

    def fit(self, train: TrainingSet) -> Fitted: ...

    def load(self, artifact: bytes) -> ServingModel:
        """Verified artifact bytes -> serving model, without training libraries; ValueError if unusable."""
        ...

    def heuristic(self, features: Mapping[str, float]) -> float:
        """The probability answered when no verified model can serve."""
        ...

    def risk_level(self, probability: float) -> str: ...


def feature_quantiles(design: NDArray[np.float64], names: Sequence[str]) -> dict[str, list[float] | None]:
    """Deciles of each model input at training time, kept in the manifest for drift checks."""
    sketch: dict[str, list[float] | None] = {}
    for column, name in enumerate(names):
        values = design[:, column][~np.isnan(design[:, column])] if design.shape[0] else design[:0, 0]
        # Missing values (NaN) are left out; a feature never observed has no sketch.
        sketch[name] = [round(float(v), 6) for v in np.quantile(values, np.linspace(0, 1, 11))] if len(values) else None
    return sketch


def feature_frequencies(design: NDArray[np.float64], names: Sequence[str], max_values: int = 12) -> dict[str, dict[str, float]]:
    """Shares of each value of the low-cardinality integer inputs (flags, codes), kept in the
    manifest beside the deciles: drift checks compare categories by chi-square, not by deciles."""
    shares: dict[str, dict[str, float]] = {}
    for column, name in enumerate(names):
        values = design[:, column][~np.isnan(design[:, column])] if design.shape[0] else design[:0, 0]
        distinct, counts = np.unique(values, return_counts=True)
        if 0 < len(distinct) <= max_values and np.all(distinct == np.round(distinct)):
            shares[name] = {f"{v:g}": round(float(c) / len(values), 6) for v, c in zip(distinct, counts, strict=True)}
    return shares
