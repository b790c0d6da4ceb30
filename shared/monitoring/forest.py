"""Isolation Forest in its serving form: numpy only. Training fits scikit-learn's IsolationForest
(training.py); what scoring needs of each tree (feature, threshold, children, and each leaf's path
length) is exported here and scored level by level. tests/unit/test_monitoring_on_fakes.py checks
the scores equal scikit-learn's score_samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

EULER_GAMMA = 0.5772156649015329


def average_path_length(n: NDArray[np.float64]) -> NDArray[np.float64]:
    """c(n): the mean path length of an unsuccessful search in a binary search tree of n points."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + EULER_GAMMA) - 2.0 * (n[big] - 1.0) / n[big]
    return out


@dataclass(frozen=True)
class Tree:
    feature: NDArray[np.int64]
    threshold: NDArray[np.float64]
    left: NDArray[np.int64]  # -1 at a leaf
    right: NDArray[np.int64]
    leaf_depth: NDArray[np.float64]  # at a leaf: its depth + c(samples that reached it)

    def path_lengths(self, design: NDArray[np.float64]) -> NDArray[np.float64]:
        node = np.zeros(len(design), dtype=np.int64)
        rows = np.arange(len(design))
        while True:
            inner = self.left[node] >= 0
            if not inner.any():
                return self.leaf_depth[node]
            go_left = design[rows, np.maximum(self.feature[node], 0)] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)


@dataclass(frozen=True)
class IsolationForestModel:
    trees: tuple[Tree, ...]
    max_samples: int
    # Raw scores of the training vectors at these quantiles: [0, 1] is spread between them.
    reference: float
    ceiling: float

    def raw_scores(self, design: NDArray[np.float64]) -> NDArray[np.float64]:
        """scikit-learn's -score_samples: 2^(-mean path length / c(max_samples)), in (0, 1]."""
        depths = np.zeros(len(design))
        for tree in self.trees:
            depths += tree.path_lengths(design)
        c = float(average_path_length(np.array([float(self.max_samples)]))[0])
        result: NDArray[np.float64] = 2.0 ** (-depths / (len(self.trees) * c))
        return result

    def predict_proba(self, design: NDArray[np.float64]) -> NDArray[np.float64]:
        """Anomaly score in (0, 1), strictly increasing in the raw score (rankings, hence ROC-AUC,
        are the forest's own): 0.5 at the training vectors' 99th percentile, 0.98 at their maximum
        (the scale was fixed on past data only)."""
        design = np.nan_to_num(np.asarray(design, dtype=np.float64))
        width = max(self.ceiling - self.reference, 1e-6) / 4.0
        result: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-(self.raw_scores(design) - self.reference) / width))
        return result

    def to_dict(self) -> dict[str, Any]:
        return {"max_samples": self.max_samples, "reference": self.reference, "ceiling": self.ceiling,
                "trees": [{"feature": t.feature.tolist(), "threshold": t.threshold.tolist(), "left": t.left.tolist(),
                           "right": t.right.tolist(), "leaf_depth": t.leaf_depth.tolist()} for t in self.trees]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IsolationForestModel:
        trees = tuple(Tree(np.asarray(t["feature"], dtype=np.int64), np.asarray(t["threshold"], dtype=np.float64),
                           np.asarray(t["left"], dtype=np.int64), np.asarray(t["right"], dtype=np.int64),
                           np.asarray(t["leaf_depth"], dtype=np.float64)) for t in data["trees"])
        if not trees:
            raise ValueError("an isolation forest needs trees")
        return cls(trees, int(data["max_samples"]), float(data["reference"]), float(data["ceiling"]))


def export_forest(fitted: Any, training_design: NDArray[np.float64]) -> IsolationForestModel:
    """scikit-learn's fitted IsolationForest -> the numpy form (feature indices mapped back through
    each estimator's feature subset, which scikit-learn draws as a permutation)."""
    trees = []
    for estimator, features in zip(fitted.estimators_, fitted.estimators_features_, strict=True):
        tree = estimator.tree_
        left, right = tree.children_left.astype(np.int64), tree.children_right.astype(np.int64)
        depth = np.zeros(tree.node_count)
        for node in range(tree.node_count):  # parents come before their children
            if left[node] >= 0:
                depth[left[node]] = depth[right[node]] = depth[node] + 1
        leaf_depth = depth + average_path_length(tree.n_node_samples.astype(np.float64))
        leaf_depth[left >= 0] = 0.0
        feature = np.where(left >= 0, np.asarray(features)[np.maximum(tree.feature, 0)], -1).astype(np.int64)
        trees.append(Tree(feature, tree.threshold.astype(np.float64), left, right, leaf_depth))
    model = IsolationForestModel(tuple(trees), int(fitted.max_samples_), 0.0, 1.0)
    raw = model.raw_scores(training_design)
    return IsolationForestModel(model.trees, model.max_samples, float(np.quantile(raw, 0.99)), float(raw.max()))
