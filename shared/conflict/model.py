"""The conflict model in its serving form: numpy only, nothing from training on the request path.

A logistic regression over a *basis* of the raw features: monotone transforms (log1p of counts
and hours, indicators of "anyone at all"), hinges (piecewise-linear effects of staleness and
entity activity at knots chosen from the training data) and interactions (overlap and others'
edits matter more the longer the device was away). Which basis, and how strongly the coefficients
are shrunk, is chosen in training on a time-ordered validation split (shared/conflict/fitting.py);
the artifact names the basis and holds its knots, the standardisation and the coefficients.

Artifacts of the first form (`standardized-logistic-v1`: log1p of three of the five original
features, standardised) still load and serve.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.conflict.features import FEATURE_NAMES

KIND = "conflict"  # the registry's name for this model
ARTIFACT_FORMAT = "json"
SERVING_FORM = "basis-logistic-v2"
LEGACY_SERVING_FORM = "standardized-logistic-v1"
LEGACY_LOG1P = frozenset({"concurrent_editors", "hours_since_last_sync", "entity_edit_frequency"})

# Risk levels by probability: low < 0.2 <= medium < 0.5 <= high.
RISK_THRESHOLDS: tuple[tuple[float, str], ...] = ((0.5, "high"), (0.2, "medium"), (0.0, "low"))

Rows = Sequence[Mapping[str, float]] | Mapping[str, Any]


def risk_level(probability: float) -> str:
    for threshold, level in RISK_THRESHOLDS:
        if probability >= threshold:
            return level
    return "low"


def design_matrix(rows: Rows, feature_names: Sequence[str] = FEATURE_NAMES) -> NDArray[np.float64]:
    """Feature rows (a list of dicts) or feature columns (a dict of arrays) -> the raw features as
    a matrix in FEATURE_NAMES order. Every transform belongs to the model (its basis)."""
    if isinstance(rows, Mapping):
        if not feature_names or len(np.asarray(rows[feature_names[0]])) == 0:
            return np.zeros((0, len(feature_names)))
        return np.column_stack([np.asarray(rows[name], dtype=np.float64) for name in feature_names])
    if not rows:
        return np.zeros((0, len(feature_names)))
    return np.array([[float(row[name]) for name in feature_names] for row in rows], dtype=np.float64)


def _linear(inputs: NDArray[np.float64], coefficients: NDArray[np.float64]) -> NDArray[np.float64]:
    """inputs @ coefficients by numpy's own loop, not BLAS: OpenBLAS splits a long matrix-vector
    product over threads that then spin idle for about 0.1 s, which on 2 busy cores took that
    long again from the batch scoring after it (its CSV writing doubled). The values are the
    same to the last bit or two (the order of the sums): on the issue's 41,290 rows every
    probability printed alike."""
    product: NDArray[np.float64] = np.einsum("ij,j->i", inputs, coefficients)
    return product


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
    return out


# -- the bases ------------------------------------------------------------------------------------

_COLUMN = {name: n for n, name in enumerate(FEATURE_NAMES)}
BASES: tuple[str, ...] = ("plain", "indicators", "interactions", "hinges")
HINGED = ("hours_since_last_sync", "entity_edit_frequency", "other_edits_since_sync")


def basis(design: NDArray[np.float64], name: str, knots: Mapping[str, Sequence[float]]) -> NDArray[np.float64]:
    """The model's inputs from the raw features. Bases are nested: each adds to the one before."""
    if name not in BASES:
        raise ValueError(f"unknown basis {name!r}")

    def raw(feature: str) -> NDArray[np.float64]:
        return design[:, _COLUMN[feature]]

    def log(feature: str) -> NDArray[np.float64]:
        return np.log1p(np.maximum(raw(feature), 0.0))

    columns = [log("concurrent_editors"), log("hours_since_last_sync"), raw("user_conflict_rate"),
               log("entity_edit_frequency"), raw("field_overlap_score"), log("other_edits_since_sync")]
    level = BASES.index(name)
    if level >= 1:
        others = (raw("other_edits_since_sync") > 0).astype(np.float64)
        columns += [others, (raw("field_overlap_score") > 0).astype(np.float64),
                    (raw("concurrent_editors") > 0).astype(np.float64)]
    if level >= 2:
        hours = log("hours_since_last_sync")
        columns += [raw("field_overlap_score") * hours, others * hours,
                    raw("field_overlap_score") * log("other_edits_since_sync"),
                    others * raw("user_conflict_rate"), others * log("entity_edit_frequency")]
    if level >= 3:
        for feature in HINGED:
            for knot in knots.get(feature, ()):
                columns.append(np.maximum(log(feature) - knot, 0.0))
    return np.column_stack(columns)


@dataclass(frozen=True)
class BasisLogisticModel:
    basis_name: str
    knots: Mapping[str, tuple[float, ...]]
    means: NDArray[np.float64]
    scales: NDArray[np.float64]
    coefficients: NDArray[np.float64]
    intercept: float
    feature_names: tuple[str, ...] = FEATURE_NAMES

    def inputs(self, design: NDArray[np.float64]) -> NDArray[np.float64]:
        return (basis(design, self.basis_name, self.knots) - self.means) / self.scales

    def predict_proba(self, design: NDArray[np.float64]) -> NDArray[np.float64]:
        return _sigmoid(_linear(self.inputs(design), self.coefficients) + self.intercept)

    def predict_rows(self, rows: Rows) -> NDArray[np.float64]:
        return self.predict_proba(design_matrix(rows, self.feature_names))

    def to_artifact(self) -> bytes:
        return json.dumps(
            {
                "serving_form": SERVING_FORM,
                "feature_names": list(self.feature_names),
                "basis": self.basis_name,
                "knots": {name: list(values) for name, values in self.knots.items()},
                "means": self.means.tolist(),
                "scales": self.scales.tolist(),
                "coefficients": self.coefficients.tolist(),
                "intercept": self.intercept,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_artifact(cls, payload: Mapping[str, Any]) -> BasisLogisticModel:
        if tuple(payload["feature_names"]) != FEATURE_NAMES:
            raise ValueError(f"artifact features {payload['feature_names']} are not {list(FEATURE_NAMES)}")
        knots = {str(k): tuple(float(x) for x in v) for k, v in dict(payload.get("knots", {})).items()}
        model = cls(
            basis_name=str(payload["basis"]), knots=knots,
            means=np.asarray(payload["means"], dtype=np.float64),
            scales=np.asarray(payload["scales"], dtype=np.float64),
            coefficients=np.asarray(payload["coefficients"], dtype=np.float64),
            intercept=float(payload["intercept"]),
        )
        width = basis(np.zeros((1, len(FEATURE_NAMES))), model.basis_name, knots).shape[1]
        for name, values in (("means", model.means), ("scales", model.scales), ("coefficients", model.coefficients)):
            if values.shape != (width,) or not np.all(np.isfinite(values)):
                raise ValueError(f"artifact {name} do not fit the {width} inputs of basis {model.basis_name}")
        if np.any(model.scales == 0) or not math.isfinite(model.intercept):
            raise ValueError("artifact has a zero scale or no intercept")
        return model


@dataclass(frozen=True)
class LinearConflictModel:
    """A `standardized-logistic-v1` artifact (the first serving form): a plain logistic regression
    on named features, log1p of three of them, standardised. Still served; also the simplest
    model to register by hand (tests, the load test)."""

    feature_names: tuple[str, ...]
    means: NDArray[np.float64]
    scales: NDArray[np.float64]
    coefficients: NDArray[np.float64]
    intercept: float

    def predict_proba(self, design: NDArray[np.float64]) -> NDArray[np.float64]:
        picked = design[:, [_COLUMN[name] for name in self.feature_names]].copy()
        for n, name in enumerate(self.feature_names):
            if name in LEGACY_LOG1P:
                picked[:, n] = np.log1p(np.maximum(picked[:, n], 0.0))
        return _sigmoid(_linear((picked - self.means) / self.scales, self.coefficients) + self.intercept)

    def to_artifact(self) -> bytes:
        return json.dumps(
            {"serving_form": LEGACY_SERVING_FORM, "feature_names": list(self.feature_names),
             "log1p_features": sorted(LEGACY_LOG1P & set(self.feature_names)), "means": self.means.tolist(),
             "scales": self.scales.tolist(), "coefficients": self.coefficients.tolist(), "intercept": self.intercept},
            sort_keys=True,
        ).encode()

    @classmethod
    def from_artifact(cls, payload: Mapping[str, Any]) -> LinearConflictModel:
        names = tuple(payload["feature_names"])
        if not names or not set(names) <= set(FEATURE_NAMES):
            raise ValueError(f"artifact names unknown features: {names}")
        if sorted(payload["log1p_features"]) != sorted(LEGACY_LOG1P & set(names)):
            raise ValueError("artifact was trained with other feature transforms")
        model = cls(names, np.asarray(payload["means"], dtype=np.float64),
                    np.asarray(payload["scales"], dtype=np.float64),
                    np.asarray(payload["coefficients"], dtype=np.float64), float(payload["intercept"]))
        for name, values in (("means", model.means), ("scales", model.scales), ("coefficients", model.coefficients)):
            if values.shape != (len(names),) or not np.all(np.isfinite(values)):
                raise ValueError(f"artifact {name} do not fit {len(names)} features")
        if np.any(model.scales == 0):
            raise ValueError("artifact has a zero scale")
        return model


def load_model(payload: Mapping[str, Any]) -> BasisLogisticModel | LinearConflictModel:
    form = payload.get("serving_form")
    if form == SERVING_FORM:
        return BasisLogisticModel.from_artifact(payload)
    if form == LEGACY_SERVING_FORM:
        return LinearConflictModel.from_artifact(payload)
    raise ValueError(f"not a {SERVING_FORM} artifact")


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
