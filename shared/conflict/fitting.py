"""Fitting the conflict model: choose a basis and a shrinkage on a time-ordered validation split,
then fit the choice on all training rows. numpy only (a penalised Newton fit of a logistic
regression converges in a few steps on these few dozen inputs).

Candidates: every basis of shared/conflict/model.py (plain -> indicators -> interactions ->
hinges) times a few L2 strengths. Each is fitted on the older 80 % of the training rows and
judged on the newest 20 % by log loss (a proper score: it rewards ranking and calibration alike);
the table of all candidates, with ROC-AUC, PR-AUC and Brier, goes into the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.conflict.model import BASES, HINGED, BasisLogisticModel, basis
from shared.platform.kinds import TrainingSet
from shared.platform.metrics import average_precision, brier_score, log_loss, roc_auc

# Penalty per row on the standardised coefficients (the intercept is free).
L2_STRENGTHS: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
VALIDATION_FRACTION = 0.2
KNOT_QUANTILES: tuple[float, ...] = (0.25, 0.5, 0.75)
NEWTON_STEPS = 25


@dataclass(frozen=True)
class Selection:
    model: BasisLogisticModel
    basis: str
    l2: float
    table: list[dict[str, Any]]


def choose_knots(design: NDArray[np.float64]) -> dict[str, tuple[float, ...]]:
    """Knots of the hinges: quantiles of the log1p feature among its nonzero values."""
    from shared.conflict.model import _COLUMN

    knots: dict[str, tuple[float, ...]] = {}
    for name in HINGED:
        values = np.log1p(np.maximum(design[:, _COLUMN[name]], 0.0))
        values = values[values > 0]
        if len(values) >= 50:
            knots[name] = tuple(sorted({round(float(q), 6) for q in np.quantile(values, KNOT_QUANTILES)}))
    return knots


def _objective(x: NDArray[np.float64], y: NDArray[np.float64], beta: NDArray[np.float64],
               penalty: NDArray[np.float64]) -> float:
    z = x @ beta
    # log(1 + e^z) - y z, computed without overflow, plus the ridge term.
    return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * beta * beta))


def _fit_logistic(x: NDArray[np.float64], y: NDArray[np.float64], l2: float) -> NDArray[np.float64]:
    """Penalised Newton-Raphson with step halving (a full step can overshoot on near-separable
    inputs such as indicators); x carries a leading column of ones (not penalised)."""
    rows, width = x.shape
    penalty = np.full(width, l2 * rows)
    penalty[0] = 0.0
    beta = np.zeros(width)
    prior = min(max(float(y.mean()), 1e-6), 1 - 1e-6)
    beta[0] = np.log(prior / (1 - prior))
    current = _objective(x, y, beta, penalty)
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -500, 500)))
        gradient = x.T @ (p - y) + penalty * beta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-6)
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-4:
            candidate = beta - scale * step
            value = _objective(x, y, candidate, penalty)
            if np.isfinite(value) and value <= current:
                break
            scale /= 2
        else:
            break  # no step improves: converged as far as floating point allows
        beta, improvement, current = candidate, current - value, value
        if improvement < 1e-9 * max(1.0, abs(current)):
            break
    return beta


def fit_basis(design: NDArray[np.float64], labels: NDArray[np.bool_], basis_name: str, l2: float,
              knots: dict[str, tuple[float, ...]]) -> BasisLogisticModel:
    inputs = basis(design, basis_name, knots)
    means = inputs.mean(axis=0)
    scales = inputs.std(axis=0)
    scales[scales == 0] = 1.0
    x = np.column_stack([np.ones(len(inputs)), (inputs - means) / scales])
    beta = _fit_logistic(x, labels.astype(np.float64), l2)
    return BasisLogisticModel(basis_name, knots, means, scales, beta[1:].copy(), float(beta[0]))


def _scores(labels: NDArray[np.bool_], p: NDArray[np.float64]) -> dict[str, float | None]:
    return {"log_loss": round(log_loss(labels, p), 6), "roc_auc": _round(roc_auc(labels, p)),
            "pr_auc": _round(average_precision(labels, p)), "brier": round(brier_score(labels, p), 6)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def select_and_fit(train: TrainingSet) -> Selection:
    """Compare every (basis, L2) on the newest 20 % of the training rows; fit the best on all."""
    cut = int(round(train.rows * (1 - VALIDATION_FRACTION)))
    older, newer = slice(0, cut), slice(cut, None)
    knots = choose_knots(train.design[older])
    table: list[dict[str, Any]] = []
    best: tuple[float, str, float] | None = None
    validation_usable = 0 < int(train.labels[newer].sum()) < train.rows - cut and 0 < int(train.labels[older].sum())
    if validation_usable:
        for basis_name in BASES:
            for l2 in L2_STRENGTHS:
                model = fit_basis(train.design[older], train.labels[older], basis_name, l2, knots)
                scores = _scores(train.labels[newer], model.predict_proba(train.design[newer]))
                table.append({"basis": basis_name, "l2": l2, **scores})
                if best is None or scores["log_loss"] < best[0]:  # type: ignore[operator]
                    best = (float(scores["log_loss"]), basis_name, l2)  # type: ignore[arg-type]
    chosen_basis, chosen_l2 = (best[1], best[2]) if best else ("plain", L2_STRENGTHS[-1])
    final_knots = choose_knots(train.design)
    model = fit_basis(train.design, train.labels, chosen_basis, chosen_l2, final_knots)
    return Selection(model, chosen_basis, chosen_l2, table)


def train_conflict_model(train: TrainingSet) -> tuple[BasisLogisticModel, Selection]:
    selection = select_and_fit(train)
    return selection.model, selection
