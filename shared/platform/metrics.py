"""Classification metrics with numpy alone, so scheduled jobs and serving never import scikit-learn.

tests/unit/test_metrics.py checks each against scikit-learn's implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

_EPS = 1e-15


def _ranks(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based ranks, ties sharing their average rank (as Mann-Whitney U needs)."""
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Boundaries of runs of equal scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(scores)]))
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float | None:
    """Area under the ROC curve; None when only one class is present."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    rank_sum = _ranks(s)[y].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float | None:
    """PR-AUC as average precision (the step-wise area, as scikit-learn computes it)."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    if positives == 0:
        return None
    order = np.argsort(-s, kind="mergesort")
    y_sorted, s_sorted = y[order], s[order]
    # Evaluate only at the last index of each group of tied scores.
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    true_positives = np.cumsum(y_sorted)[last_of_group]
    predicted_positive = last_of_group + 1
    precision = true_positives / predicted_positive
    recall = true_positives / positives
    recall_steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_steps * precision))


def brier_score(labels: ArrayLike, probabilities: ArrayLike) -> float:
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    return float(np.mean((p - y) ** 2))


def log_loss(labels: ArrayLike, probabilities: ArrayLike) -> float:
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def classification_report(labels: ArrayLike, probabilities: ArrayLike) -> dict[str, float | int | None]:
    y = np.asarray(labels, dtype=bool)
    return {
        "rows": int(len(y)),
        "positives": int(y.sum()),
        "roc_auc": roc_auc(y, probabilities),
        "pr_auc": average_precision(y, probabilities),
        "brier": brier_score(y, probabilities),
        "log_loss": log_loss(y, probabilities),
    }


def reliability_table(labels: ArrayLike, probabilities: ArrayLike, bins: int = 10) -> list[dict[str, float | int]]:
    """Calibration by decile of the predicted probability: mean predicted against observed rate."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    table: list[dict[str, float | int]] = []
    for n, part in enumerate(np.array_split(np.argsort(p, kind="stable"), bins), start=1):
        if len(part):
            table.append({"decile": n, "rows": int(len(part)), "mean_predicted": round(float(p[part].mean()), 4),
                          "observed_rate": round(float(y[part].mean()), 4)})
    return table


def metric_named(name: str) -> Callable[[ArrayLike, ArrayLike], float | None]:
    """The promotion metrics by name: roc_auc, or pr_auc (average precision)."""
    return {"roc_auc": roc_auc, "pr_auc": average_precision}[name]


def paired_bootstrap_difference(
    labels: ArrayLike,
    candidate_scores: ArrayLike,
    champion_scores: ArrayLike,
    *,
    metric: Callable[[ArrayLike, ArrayLike], float | None] = roc_auc,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Interval of metric(candidate) - metric(champion) over rows resampled together for both.

    Pairing (the same resampled rows for both models) removes the variance the two share, so a
    real gain shows up with far fewer rows than two independent intervals would need.
    """
    y = np.asarray(labels, dtype=bool)
    a = np.asarray(candidate_scores, dtype=np.float64)
    b = np.asarray(champion_scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        score_a, score_b = metric(y[idx], a[idx]), metric(y[idx], b[idx])
        if score_a is not None and score_b is not None:
            differences.append(score_a - score_b)
    if not differences:
        return (float("nan"), float("nan"))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap_auc_difference(
    labels: ArrayLike, candidate_scores: ArrayLike, champion_scores: ArrayLike, **options: Any
) -> tuple[float, float]:
    """The paired bootstrap of the ROC-AUC difference."""
    return paired_bootstrap_difference(labels, candidate_scores, champion_scores, metric=roc_auc, **options)
