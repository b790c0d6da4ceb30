"""Operating points: the trade-off between catching fraud and bothering honest staff.

Chosen on the validation rows at training: `review` is the highest threshold that still reaches
the target recall (default 80 %); `block` the lowest at which precision reaches 90 % (never below
review; 1.0, i.e. never block automatically, when no threshold gets there).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

TARGET_RECALL = 0.8
BLOCK_PRECISION = 0.9
GRID = tuple(round(x, 2) for x in np.arange(0.05, 1.0, 0.05))


def tradeoff_row(labels: NDArray[np.bool_], scores: NDArray[np.float64], threshold: float, days: float) -> dict[str, Any]:
    flagged = scores >= threshold
    tp = int(np.sum(flagged & labels))
    fp = int(np.sum(flagged & ~labels))
    positives, negatives = int(labels.sum()), int((~labels).sum())
    return {
        "threshold": round(float(threshold), 6),
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / positives if positives else None,
        "false_positive_rate": fp / negatives if negatives else None,
        "alerts_per_day": round((tp + fp) / days, 3) if days > 0 else None,
    }


def choose_operating_point(
    labels: NDArray[np.bool_], scores: NDArray[np.float64], days: float, target_recall: float = TARGET_RECALL,
) -> dict[str, Any]:
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    positives = max(int(labels.sum()), 1)
    true_positives = np.cumsum(sorted_labels)
    # Thresholds are the scores themselves: flagging score >= s[i] flags every row up to the last
    # of s[i]'s ties, so each row's recall and precision are those of its whole tie group.
    through = np.searchsorted(-sorted_scores, -sorted_scores, side="right") - 1
    recall = true_positives[through] / positives
    precision = true_positives[through] / (through + 1)
    reaches = np.flatnonzero(recall >= target_recall)
    review = float(sorted_scores[reaches[0]]) if len(reaches) else float(sorted_scores.min(initial=0.0))
    precise = np.flatnonzero((precision >= BLOCK_PRECISION) & (sorted_scores >= review))
    block = float(sorted_scores[precise[-1]]) if len(precise) else 1.0
    table = [tradeoff_row(labels, scores, t, days) for t in sorted({*GRID, review, block})]
    return {
        "target_recall": target_recall,
        "review_threshold": review,
        "block_threshold": max(block, review),
        "at_review": tradeoff_row(labels, scores, review, days),
        "tradeoff": table,
    }
