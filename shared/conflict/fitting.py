"""Fitting the conflict model: choose a basis and a shrinkage on a time-ordered validation split,
then fit the choice on all training rows. numpy only (a penalised Newton fit of a logistic
regression converges in a few steps on these few dozen inputs).

Candidates: every basis of shared/conflict/model.py (plain -> indicators -> interactions ->
hinges) times a few L2 strengths. Each is fitted on the older 80 % of the training rows and
judged on the newest 20 % by log loss (a proper score: it rewards ranking and calibration alike);
the table of all candidates, with ROC-AUC, PR-AUC and Brier, goes into the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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


def _objective(z: NDArray[np.float64], y: NDArray[np.float64], beta: NDArray[np.float64],
               penalty: NDArray[np.float64]) -> float:
    # log(1 + e^z) - y z at z = x @ beta, computed without overflow (as log1p(e^-|z|) + max(z, 0),
    # a few times faster than logaddexp), plus the ridge term.
    softplus = np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0.0)
    return float(np.sum(softplus - y * z) + 0.5 * np.sum(penalty * beta * beta))


def _fit_logistic(x: NDArray[np.float64], y: NDArray[np.float64], l2: float,
                  start: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """Penalised Newton-Raphson with step halving (a full step can overshoot on near-separable
    inputs such as indicators); x carries a leading column of ones (not penalised). `start` (a
    neighbouring fit: another L2, or a smaller nested basis padded with zeros) saves most steps;
    the objective is strictly convex, so the optimum is the same from anywhere."""
    rows, width = x.shape
    penalty = np.full(width, l2 * rows)
    penalty[0] = 0.0
    if start is None:
        beta = np.zeros(width)
        prior = min(max(float(y.mean()), 1e-6), 1 - 1e-6)
        beta[0] = np.log(prior / (1 - prior))
    else:
        beta = start.copy()
    z = x @ beta
    current = _objective(z, y, beta, penalty)
    weighted = np.empty_like(x)  # reused: a fresh rows x width array per step cost more than the product
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
        gradient = x.T @ (p - y) + penalty * beta
        np.multiply(x, (p * (1 - p))[:, None], out=weighted)
        hessian = x.T @ weighted + np.diag(penalty + 1e-6)
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-4:
            candidate = beta - scale * step
            candidate_z = x @ candidate
            value = _objective(candidate_z, y, candidate, penalty)
            if np.isfinite(value) and value <= current:
                break
            scale /= 2
        else:
            break  # no step improves: converged as far as floating point allows
        beta, z, improvement, current = candidate, candidate_z, current - value, value
        if improvement < 1e-9 * max(1.0, abs(current)):
            break
    return beta


@dataclass(frozen=True)
class _Inputs:
    """A basis's inputs, standardised, with the column of ones in front."""

    x: NDArray[np.float64]
    means: NDArray[np.float64]
    scales: NDArray[np.float64]

    @classmethod
    def of(cls, design: NDArray[np.float64], basis_name: str, knots: dict[str, tuple[float, ...]]) -> _Inputs:
        inputs = basis(design, basis_name, knots)
        means = inputs.mean(axis=0)
        scales = inputs.std(axis=0)
        scales[scales == 0] = 1.0
        return cls(np.column_stack([np.ones(len(inputs)), (inputs - means) / scales]), means, scales)

    def model(self, basis_name: str, knots: dict[str, tuple[float, ...]], beta: NDArray[np.float64]
              ) -> BasisLogisticModel:
        return BasisLogisticModel(basis_name, knots, self.means, self.scales, beta[1:].copy(), float(beta[0]))


def fit_basis(design: NDArray[np.float64], labels: NDArray[np.bool_], basis_name: str, l2: float,
              knots: dict[str, tuple[float, ...]], start: NDArray[np.float64] | None = None) -> BasisLogisticModel:
    inputs = _Inputs.of(design, basis_name, knots)
    return inputs.model(basis_name, knots, _fit_logistic(inputs.x, labels.astype(np.float64), l2, start))


def _padded(beta: NDArray[np.float64] | None, width: int) -> NDArray[np.float64] | None:
    """A smaller nested basis's fit as a start for a larger one (its inputs are a prefix)."""
    if beta is None or len(beta) > width:
        return None
    return np.concatenate([beta, np.zeros(width - len(beta))])


def _scores(labels: NDArray[np.bool_], p: NDArray[np.float64]) -> dict[str, float | None]:
    return {"log_loss": round(log_loss(labels, p), 6), "roc_auc": _round(roc_auc(labels, p)),
            "pr_auc": _round(average_precision(labels, p)), "brier": round(brier_score(labels, p), 6)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def select_and_fit(train: TrainingSet) -> Selection:
    """Compare every (basis, L2) on the newest 20 % of the training rows; fit the best on all.

    Each basis's inputs are built once; its fits run from the strongest L2 to the weakest, each
    starting where the previous ended, and the first of a basis starts from the smaller basis's
    fit (nested bases: the same inputs first). The final fit starts from the chosen candidate's."""
    cut = int(round(train.rows * (1 - VALIDATION_FRACTION)))
    older, newer = slice(0, cut), slice(cut, None)
    knots = choose_knots(train.design[older])
    table: list[dict[str, Any]] = []
    fits: dict[tuple[str, float], NDArray[np.float64]] = {}
    validation_usable = 0 < int(train.labels[newer].sum()) < train.rows - cut and 0 < int(train.labels[older].sum())
    if validation_usable:
        y = train.labels[older].astype(np.float64)
        scored: dict[tuple[str, float], dict[str, Any]] = {}
        start: NDArray[np.float64] | None = None
        for basis_name in BASES:
            inputs = _Inputs.of(train.design[older], basis_name, knots)
            validation = inputs.model(basis_name, knots, np.zeros(inputs.x.shape[1]))
            start = _padded(start, inputs.x.shape[1])
            for l2 in sorted(L2_STRENGTHS, reverse=True):
                beta = fits[(basis_name, l2)] = _fit_logistic(inputs.x, y, l2, start)
                start = beta
                model = replace(validation, coefficients=beta[1:].copy(), intercept=float(beta[0]))
                scored[(basis_name, l2)] = _scores(train.labels[newer], model.predict_proba(train.design[newer]))
            start = fits[(basis_name, max(L2_STRENGTHS))]  # the next basis starts from the smoothest
        table = [{"basis": b, "l2": l2, **scored[(b, l2)]} for b in BASES for l2 in L2_STRENGTHS]
    best = min(table, key=lambda row: row["log_loss"], default=None)  # the first of equals, in table order
    chosen_basis, chosen_l2 = (best["basis"], best["l2"]) if best else ("plain", L2_STRENGTHS[-1])
    final_knots = choose_knots(train.design)
    start = fits.get((chosen_basis, chosen_l2))
    if start is not None and _Inputs.of(train.design[:1], chosen_basis, final_knots).x.shape[1] != len(start):
        start = None  # other knots on all rows (a hinge appeared or vanished): start afresh
    model = fit_basis(train.design, train.labels, chosen_basis, chosen_l2, final_knots, start)
    return Selection(model, chosen_basis, chosen_l2, table)


def train_conflict_model(train: TrainingSet) -> tuple[BasisLogisticModel, Selection]:
    selection = select_and_fit(train)
    return selection.model, selection
